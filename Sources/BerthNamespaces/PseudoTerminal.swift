import BerthSystem
import CBerthShim

#if canImport(Glibc)
import Glibc
#endif

/// A pseudo-terminal pair: the master end a container process's terminal is talked to through.
///
/// Two ways to get one. ``ContainerProcess/takeTerminal()`` returns the master of the terminal a
/// process opened in its own devpts (``ProcessStdio/containerTerminal(size:)``, what `-t` uses);
/// ``slave`` is then -1. ``open(size:nonBlockingMaster:)`` opens a pair in the caller's devpts:
/// give the ``slave`` to a process with ``ProcessStdio/terminal(_:)``.
///
/// The caller owns the descriptors (close-on-exec): close the slave once the process has
/// started (the child holds its own copy), the master when done with the process's I/O.
public struct PseudoTerminal: Sendable, Equatable {
    /// The master side: what the process writes to its terminal is read here; what is written
    /// here is the process's terminal input.
    public let master: Int32
    /// The slave side: the process's terminal; -1 when it lives in the container (it was opened
    /// there).
    public let slave: Int32

    /// Opens a new pair (`posix_openpt`, unlocked, slave opened with `TIOCGPTPEER`).
    /// - Parameters:
    ///   - size: The initial window size (rows, columns), e.g. the caller's terminal's.
    ///   - nonBlockingMaster: Whether the master is opened `O_NONBLOCK`.
    public static func open(size: WindowSize? = nil, nonBlockingMaster: Bool = false) throws -> PseudoTerminal {
        var master: Int32 = -1, slave: Int32 = -1
        var w = winsize(ws_row: size?.rows ?? 0, ws_col: size?.columns ?? 0, ws_xpixel: 0, ws_ypixel: 0)
        let rc = size == nil ? berth_openpty(&master, &slave, nonBlockingMaster ? 1 : 0, nil)
                             : berth_openpty(&master, &slave, nonBlockingMaster ? 1 : 0, &w)
        guard rc == 0 else { throw BerthError.system("open a pseudo-terminal (/dev/ptmx)") }
        return PseudoTerminal(master: master, slave: slave)
    }

    /// Sets the terminal's window size (the process gets `SIGWINCH`).
    public func resize(_ size: WindowSize) throws {
        var w = winsize(ws_row: size.rows, ws_col: size.columns, ws_xpixel: 0, ws_ypixel: 0)
        guard berth_set_winsize(master, &w) == 0 else { throw BerthError.system("set the window size of pty \(master)") }
    }

    /// Closes the slave (after the process has started).
    public func closeSlave() { if slave >= 0 { Glibc.close(slave) } }

    /// Closes both ends.
    public func close() {
        closeSlave()
        Glibc.close(master)
    }
}

/// A terminal window size in character cells.
public struct WindowSize: Sendable, Equatable {
    /// Rows.
    public var rows: UInt16
    /// Columns.
    public var columns: UInt16

    /// - Parameters:
    ///   - rows: Rows.
    ///   - columns: Columns.
    public init(rows: UInt16, columns: UInt16) {
        self.rows = rows
        self.columns = columns
    }

    /// The window size of the terminal on `fd`, or nil when `fd` is not a terminal.
    public static func of(_ fd: Int32) -> WindowSize? {
        var w = winsize()
        guard berth_get_winsize(fd, &w) == 0 else { return nil }
        return WindowSize(rows: w.ws_row, columns: w.ws_col)
    }
}
