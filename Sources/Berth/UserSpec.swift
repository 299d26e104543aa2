import BerthSystem

/// A `-u` value: `uid`, `uid:gid`, `name` or `name:group`. Names are looked up in the container's
/// /etc/passwd and /etc/group when it starts.
public struct UserSpec: Sendable, Equatable {
    /// The user part (a number or a name); empty means root.
    public var user: String
    /// The group part, if given.
    public var group: String?

    /// - Parameter text: The `-u` value; empty means root.
    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count <= 2, parts.allSatisfy({ !$0.contains(where: { $0 == " " || $0 == "\n" }) }) else {
            throw BerthError(.invalidArgument, "invalid user \"\(text)\": expected USER[:GROUP]")
        }
        if parts.count == 2 && (parts[0].isEmpty || parts[1].isEmpty) {
            throw BerthError(.invalidArgument, "invalid user \"\(text)\": expected USER[:GROUP]")
        }
        user = parts.first ?? ""
        group = parts.count == 2 ? parts[1] : nil
    }

    /// Resolves the user and group ids against the rootfs's /etc/passwd and /etc/group.
    /// - Parameter rootfs: The container's root directory.
    /// - Returns: uid, gid and supplementary gids.
    public func resolve(rootfs: String) throws -> (uid: UInt32, gid: UInt32) {
        if user.isEmpty { return (0, 0) }
        let passwd = (try? FileIO.read(rootfs + "/etc/passwd")) ?? ""
        var uid: UInt32, gid: UInt32
        if let n = UInt32(user) {
            uid = n
            gid = Self.entries(passwd).first { $0.count > 3 && UInt32($0[2]) == n }.flatMap { UInt32($0[3]) } ?? 0
        } else {
            guard let entry = Self.entries(passwd).first(where: { $0.count > 3 && $0[0] == user }),
                  let u = UInt32(entry[2]), let g = UInt32(entry[3]) else {
                throw BerthError(.notFound, "unable to find user \(user): no matching entries in passwd file")
            }
            uid = u
            gid = g
        }
        if let group {
            if let n = UInt32(group) {
                gid = n
            } else {
                let groups = (try? FileIO.read(rootfs + "/etc/group")) ?? ""
                guard let entry = Self.entries(groups).first(where: { $0.count > 2 && $0[0] == group }), let g = UInt32(entry[2]) else {
                    throw BerthError(.notFound, "unable to find group \(group): no matching entries in group file")
                }
                gid = g
            }
        }
        return (uid, gid)
    }

    private static func entries(_ text: String) -> [[String]] {
        text.split(separator: "\n").map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
    }
}
