import BerthSystem

extension ContainerSpec {
    /// The security settings this spec asks for, ready for the spawner: `process.capabilities`
    /// (names → masks), `process.noNewPrivileges`, `linux.maskedPaths`, `linux.readonlyPaths` and
    /// `linux.seccomp` compiled to BPF. A spec without `process.capabilities` leaves the
    /// capabilities as they are (nil); without `linux.seccomp` it gets no filter.
    /// - Parameter cache: Where compiled seccomp programs are remembered.
    /// - Throws: ``BerthError`` (`.invalidArgument`) naming an unknown capability or a profile
    ///   that does not compile.
    public func processSecurity(cache: SeccompProgramCache = .shared) throws -> ProcessSecurity {
        var security = ProcessSecurity(noNewPrivileges: process?.noNewPrivileges ?? false,
                                       maskedPaths: linux?.maskedPaths ?? [], readonlyPaths: linux?.readonlyPaths ?? [])
        var bounding = CapabilitySet.dockerDefault
        if let caps = process?.capabilities {
            func set(_ names: [String]?, _ field: String) throws -> CapabilitySet {
                var result = CapabilitySet()
                for name in names ?? [] {
                    do { result.insert(try Capability(parsing: name)) } catch let e as BerthError {
                        throw BerthError(.invalidArgument, "process.capabilities.\(field): \(e.message)")
                    }
                }
                return result
            }
            bounding = try set(caps.bounding, "bounding")
            security.capabilities = CapabilityMasks(
                bounding: bounding.mask, effective: try set(caps.effective, "effective").mask,
                permitted: try set(caps.permitted, "permitted").mask,
                inheritable: try set(caps.inheritable, "inheritable").mask, ambient: try set(caps.ambient, "ambient").mask)
        }
        if let profile = linux?.seccomp {
            security.seccompFilter = try cache.program(for: profile, capabilities: bounding)
        }
        return security
    }
}
