import ArgumentParser
import BerthIPAM
import BerthNetLink
import BerthSystem

/// `berth-ipam`: shows which pool subnet Berth would choose given the host's routes (read through
/// BerthNetLink) and nameservers, and allocates or releases addresses against a state directory.
@main
struct BerthIPAMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "berth-ipam",
        abstract: "Subnet choice and address allocation, Docker style.",
        subcommands: [Choose.self, Allocate.self, Release.self, Show.self])

    struct Choose: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the subnet a new network would get here.")

        @Option(help: "resolv.conf whose nameservers are avoided.")
        var resolvConf = "/etc/resolv.conf"

        @Option(help: "A state directory whose networks' subnets are avoided too.")
        var root: String?

        func run() throws {
            let routes = try NetlinkSession().routes()
            let nameservers = ResolvConf.nameservers(path: resolvConf)
            print("host routes: \(routes.isEmpty ? "none" : routes.map(\.description).joined(separator: "; "))")
            print("nameservers: \(nameservers.isEmpty ? "none" : nameservers.map(\.description).joined(separator: ", "))")
            let taken = try root.map { try AddressAllocator.networks(root: $0).values.map(\.subnet) } ?? []
            let subnet = try AddressPool.chooseSubnet(hostRoutes: routes.filter { !$0.isDefault }.map(\.destination),
                                                      nameservers: nameservers, taken: taken)
            let s = try NetworkSubnet(subnet: subnet)
            print("chosen: \(s.subnet) (gateway \(s.gateway))")
        }
    }

    struct Allocate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Allocate addresses in a network (created on first use).")

        @Option(help: "State directory.") var root: String
        @Option(help: "Network name.") var network = "bridge"
        @Option(help: "Subnet or bip of a new network (A.B.C.D/N); chosen from the pools when omitted.") var bip: String?
        @Option(help: "A specific address.") var ip: String?
        @Option(name: .shortAndLong, help: "How many addresses.") var count = 1

        func run() throws {
            let allocator: AddressAllocator
            if let bip {
                allocator = try AddressAllocator(root: root, network: network, subnet: try NetworkSubnet(bip: bip))
            } else {
                let routes = try NetlinkSession().routes().filter { !$0.isDefault }.map(\.destination)
                allocator = try AddressAllocator.create(root: root, network: network, hostRoutes: routes,
                                                        nameservers: ResolvConf.nameservers())
            }
            print("network \(network): \(allocator.subnet)")
            if let ip {
                print(try allocator.allocate(try IPv4Address.parse(ip)))
            } else {
                for a in try allocator.allocate(count: count) { print(a) }
            }
        }
    }

    struct Release: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Release addresses.")

        @Option(help: "State directory.") var root: String
        @Option(help: "Network name.") var network = "bridge"
        @Argument(help: "Addresses to release.") var addresses: [String]

        func run() throws {
            let allocator = try AddressAllocator.open(root: root, network: network)
            let n = try allocator.release(try addresses.map(IPv4Address.parse))
            print("released \(n) of \(addresses.count)")
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List networks and their allocated addresses.")

        @Option(help: "State directory.") var root: String

        func run() throws {
            for (name, subnet) in try AddressAllocator.networks(root: root).sorted(by: { $0.key < $1.key }) {
                let allocated = try AddressAllocator.open(root: root, network: name).allocatedAddresses()
                print("\(name): \(subnet) — \(allocated.count) allocated: \(allocated.prefix(20).map(\.description).joined(separator: " "))\(allocated.count > 20 ? " …" : "")")
            }
        }
    }
}
