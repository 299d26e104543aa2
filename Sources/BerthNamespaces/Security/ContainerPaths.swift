/// The paths under /proc and /sys that a container must not see or must not change, as runc and
/// Docker set them by default (`--privileged` and `--security-opt systempaths=unconfined` clear
/// both lists).
public enum ContainerPaths {
    /// Hidden: /dev/null is bind-mounted over files, an empty read-only tmpfs over directories.
    /// They leak host information (/proc/kcore is the host's memory, /proc/keys the host's
    /// keyrings, /proc/timer_list and /proc/sched_debug other processes' activity) or reach
    /// firmware and power controls.
    public static let masked: [String] = [
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
        "/sys/firmware", "/sys/devices/virtual/powercap",
    ]

    /// Re-mounted read-only: kernel tunables and interrupt/bus controls that are global to the host.
    public static let readonly: [String] = [
        "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
    ]
}
