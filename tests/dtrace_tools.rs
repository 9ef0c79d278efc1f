//! The D scripts in `tools/` cannot drift from the driver: their exit
//! reasons, ioctl numbers and probe names are checked against the Rust
//! definitions (`kvm_vmx::ExitReason`, `kvm_ioctl::abi::ALL_IOCTLS`,
//! `kvm_kstat::sdt::PROBE_SYMBOLS`).

use std::collections::BTreeMap;
use std::path::Path;

fn tool(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tools")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `inline <type> NAME = VALUE;` lines of a D library.
fn inlines(d: &str, ty: &str) -> BTreeMap<String, u64> {
    let prefix = format!("inline {ty} ");
    d.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            let (name, value) = rest.split_once(" = ").expect("NAME = VALUE");
            let value = value.trim_end_matches(';');
            let v = match value.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
                None => value.parse().unwrap(),
            };
            (name.to_string(), v)
        })
        .collect()
}

/// Every `r == NAME ? "NAME"` arm of a D string translator.
fn translator_arms(d: &str) -> Vec<(String, String)> {
    d.lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l
                .strip_prefix("r == ")
                .or_else(|| l.strip_prefix("i == "))?;
            let (name, s) = rest.split_once(" ? ")?;
            Some((
                name.to_string(),
                s.trim_end_matches(" :").trim_matches('"').to_string(),
            ))
        })
        .collect()
}

#[test]
fn exitno_d_names_every_exit_reason_with_its_sdm_number() {
    let d = tool("dlib/exitno.d");
    let got = inlines(&d, "int");
    let want: BTreeMap<String, u64> = kvm_vmx::ExitReason::ALL
        .iter()
        .map(|r| (r.name().to_string(), *r as u64))
        .collect();
    assert_eq!(got, want);
    let arms = translator_arms(&d);
    assert_eq!(arms.len(), want.len());
    assert!(arms.iter().all(|(n, s)| n == s && want.contains_key(n)));
}

#[test]
fn kvmioctl_d_has_exactly_the_rust_ioctl_numbers() {
    let d = tool("dlib/kvmioctl.d");
    let got = inlines(&d, "unsigned");
    let want: BTreeMap<String, u64> = kvm_ioctl::abi::ALL_IOCTLS
        .iter()
        .map(|(n, v)| (n.to_string(), u64::from(*v)))
        .collect();
    assert_eq!(got, want, "run tools/gen-kvmioctl-d.sh");
    let arms = translator_arms(&d);
    assert_eq!(arms.len(), want.len());
}

#[test]
fn d_scripts_use_only_probes_the_driver_defines() {
    let ours: Vec<String> = kvm_kstat::sdt::PROBE_SYMBOLS
        .iter()
        .map(|s| {
            let mut buf = [0u8; 64];
            let n = kvm_kstat::sdt::probe_name(s, &mut buf);
            String::from_utf8(buf[..n].to_vec()).unwrap()
        })
        .collect();
    for script in ["whyexit.d", "kvm-cr.d", "kvm-triple.d"] {
        let d = tool(script);
        let used: Vec<&str> = d
            .lines()
            .filter(|l| l.starts_with("kvm-"))
            .map(|l| l.trim())
            .collect();
        assert!(!used.is_empty(), "{script} fires on some probe");
        for p in used {
            assert!(
                ours.iter().any(|o| o == p),
                "{script}: probe {p} not defined"
            );
        }
    }
}

#[test]
fn triple_fault_script_stops_on_the_reason_exitno_defines() {
    let d = tool("kvm-triple.d");
    assert!(d.contains("/arg1 == EXIT_REASON_TRIPLE_FAULT/"));
    assert_eq!(
        kvm_vmx::ExitReason::TripleFault.name(),
        "EXIT_REASON_TRIPLE_FAULT"
    );
}

#[test]
fn badioctl_script_has_no_assignment_in_a_predicate() {
    // The C driver's version cleared state with `/self->cmd = 0/`.
    for script in ["kvm-ioctl.d", "kvm-badioctl.d"] {
        let d = tool(script);
        for l in d.lines().filter(|l| l.starts_with('/')) {
            let inner = l.trim_matches('/');
            let stripped = inner.replace("==", "").replace("!=", "");
            assert!(
                !stripped.contains('='),
                "{script}: assignment in predicate {l}"
            );
        }
    }
}
