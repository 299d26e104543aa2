import ArgumentParser

/// `berth-bench`: Berth side by side with the peer tools, in one run, alternating; prints medians
/// and ratios. Each subcommand lives in its own file.
@main
struct BerthBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "berth-bench",
        abstract: "Benchmarks Berth against runc/crun, CNI, docker-proxy and umoci in one run.",
        subcommands: [
            // Add each benchmark's subcommand here (one line each).
            NetworkBenchmark.self,
            StartBenchmark.self,
            SecurityBench.self,
            UnpackBenchmark.self,
            ProxyBenchmark.self,
            RunBenchmark.self,
            PortRulesBenchmark.self,
        ]
    )
}
