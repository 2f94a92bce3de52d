//! `neutrino bench scale` end to end, on small numbers: it starts `neutrino serve` as a child,
//! fills it, and prints a table per checkpoint whose figures come from real answers.

use std::process::Command;

#[test]
fn bench_scale_fills_a_child_server_and_measures_each_checkpoint() {
    let out = Command::new(env!("CARGO_BIN_EXE_neutrino"))
        .args([
            "bench",
            "scale",
            "--ports",
            "1200",
            "--networks",
            "3",
            "--checkpoints",
            "600",
            "--creates",
            "50",
            "--bulk-size",
            "300",
            "--repeats",
            "10",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // 50 single creates on the empty database, 500 ports on the listed network; the fill
    // brings them to 600 (one bulk of 50), then 50 more single creates, then to 1,200 (two
    // bulks: 300 and 250).
    assert!(
        stdout.contains("empty database (creates on it; 50 ports after them)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("checkpoint 600: 600 ports in the database"),
        "{stdout}"
    );
    assert!(
        stdout.contains("checkpoint 1,200: 1,200 ports in the database"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 requests, 0 failed; 550 ports at"),
        "{stdout}"
    );
    // The full list streamed every port, counted in the answer itself (the single creates of
    // a checkpoint come after it).
    for n in ["600", "1,200"] {
        assert!(
            stdout.contains(&format!("{n} ports; headers after"))
                && stdout.contains(&format!("[target all {n} ports: met]")),
            "{stdout}"
        );
    }
    // The child's memory was read, and every lookup answered the port asked for.
    assert!(
        stdout.contains("server memory (VmRSS now, VmHWM peak)  now "),
        "{stdout}"
    );
    assert!(
        !stdout.contains("WRONG") && !stdout.contains("FAILED"),
        "{stdout}"
    );
    assert!(stdout.contains("summary: http://127.0.0.1:"), "{stdout}");
}
