import BerthSystem

#if canImport(Glibc)
import Glibc
#endif

/// OCI mount options (`ro`, `nosuid`, `rbind`, `mode=755`, …) split into mount(2) flags,
/// propagation flags and the filesystem-specific data string.
struct MountOptions: Equatable {
    var flags: UInt = 0
    var clearedFlags: UInt = 0
    var propagation: UInt = 0
    var data: [String] = []
    var bind = false
    var recursive = false

    var readonly: Bool { flags & UInt(MS_RDONLY) != 0 }

    private static let flagTable: [String: (set: Bool, flag: Int)] = [
        "ro": (true, Int(MS_RDONLY)), "rw": (false, Int(MS_RDONLY)),
        "nosuid": (true, Int(MS_NOSUID)), "suid": (false, Int(MS_NOSUID)),
        "nodev": (true, Int(MS_NODEV)), "dev": (false, Int(MS_NODEV)),
        "noexec": (true, Int(MS_NOEXEC)), "exec": (false, Int(MS_NOEXEC)),
        "sync": (true, Int(MS_SYNCHRONOUS)), "async": (false, Int(MS_SYNCHRONOUS)),
        "dirsync": (true, Int(MS_DIRSYNC)), "mand": (true, Int(MS_MANDLOCK)), "nomand": (false, Int(MS_MANDLOCK)),
        "noatime": (true, Int(MS_NOATIME)), "atime": (false, Int(MS_NOATIME)),
        "nodiratime": (true, Int(MS_NODIRATIME)), "diratime": (false, Int(MS_NODIRATIME)),
        "relatime": (true, Int(MS_RELATIME)), "norelatime": (false, Int(MS_RELATIME)),
        "strictatime": (true, Int(MS_STRICTATIME)), "nostrictatime": (false, Int(MS_STRICTATIME)),
        "remount": (true, Int(MS_REMOUNT)),
    ]

    private static let propagationTable: [String: Int] = [
        "private": Int(MS_PRIVATE), "rprivate": Int(MS_PRIVATE | MS_REC),
        "slave": Int(MS_SLAVE), "rslave": Int(MS_SLAVE | MS_REC),
        "shared": Int(MS_SHARED), "rshared": Int(MS_SHARED | MS_REC),
        "unbindable": Int(MS_UNBINDABLE), "runbindable": Int(MS_UNBINDABLE | MS_REC),
    ]

    init(_ options: [String]) {
        for option in options {
            if option == "bind" { bind = true; continue }
            if option == "rbind" { bind = true; recursive = true; continue }
            if let f = Self.flagTable[option] {
                if f.set { flags |= UInt(f.flag) } else { flags &= ~UInt(f.flag); clearedFlags |= UInt(f.flag) }
                continue
            }
            if let p = Self.propagationTable[option] { propagation |= UInt(p); continue }
            data.append(option)
        }
    }

    var dataString: String? { data.isEmpty ? nil : data.joined(separator: ",") }
}
