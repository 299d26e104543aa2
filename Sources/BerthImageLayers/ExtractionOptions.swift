/// How ``TarExtractor`` writes a layer.
public struct ExtractionOptions: Sendable {
    /// What whiteout entries (`.wh.NAME`, `.wh..wh..opq`) turn into.
    public enum WhiteoutMode: Sendable {
        /// The layer is unpacked on its own for use as an overlayfs lower dir: `.wh.NAME` becomes a
        /// 0/0 character device and `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory.
        case overlay
        /// The layer is applied on top of the layers below it in the same directory: whiteouts
        /// delete the lower entry and an opaque marker empties the directory of lower entries.
        case flatten
    }

    /// What whiteout entries turn into (overlay by default).
    public var whiteouts: WhiteoutMode = .overlay
    /// Create character and block device nodes (refused with an error otherwise).
    public var allowDeviceNodes = false
    /// Keep setuid and setgid bits (stripped otherwise).
    public var keepSetuidBits = false
    /// Give entries the owner recorded in the archive (otherwise they belong to the caller).
    public var keepOwnership = true
    /// Bounds on header sizes.
    public var limits = TarLimits()

    /// - Parameter whiteouts: What whiteout entries turn into.
    public init(whiteouts: WhiteoutMode = .overlay) { self.whiteouts = whiteouts }
}

/// Progress of a long operation.
public struct Progress: Sendable {
    /// Index of the layer being processed (0-based), or nil when not layer-specific.
    public var layerIndex: Int?
    /// Count of layers in the operation.
    public var layerCount: Int
    /// Bytes of the current input processed so far.
    public var bytesDone: Int64
    /// Total bytes of the current input (0 when unknown).
    public var bytesTotal: Int64
}

/// A progress callback; it may be called from a background thread.
public typealias ProgressHandler = @Sendable (Progress) -> Void
