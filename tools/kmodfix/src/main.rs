//! Command line of kmodfix; the work is in the library (src/lib.rs).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use kmodfix::{Allowlist, AuditOptions, Error, Options};

const USAGE: &str = "\
usage: kmodfix [--allowlist FILE] [--max-panic-calls N] [--max-frame BYTES] IN OUT
       kmodfix --check [--allowlist FILE] [--max-panic-calls N] [--max-frame BYTES] FILE
       kmodfix --list-probes FILE
       kmodfix --list-probe-sites FILE

  IN OUT   strip .eh_frame/.llvmbc/.llvmcmd/.comment (with $OBJCOPY, default
           objcopy), relax GOTPCREL relocations, audit the result for krtld,
           and write OUT atomically only if the audit passes.
  --check  audit FILE as it is (no strip, no relax, nothing written).
  --list-probes
           print the distinct SDT probe names of FILE, sorted, one per line
           (__dtrace_probe_kvm__x -> kvm-x).
  --list-probe-sites
           print `FUNCTION PROBE` for every SDT probe site of FILE, sorted,
           distinct: the function DTrace shows for the probe (the sized
           function symbol around the call; `-` if none).
  --allowlist FILE
           allowed undefined symbols (one per line, # comments, extra
           TAB-separated columns ignored); __dtrace_probe_* are always allowed.
  --max-panic-calls N
           fail if there are more than N direct calls to functions whose
           name contains \"panic\" (a ratchet: N may only go down).

exit status: 0 OK, 1 audit failed or error, 2 usage error";

enum Mode {
    Fix { input: PathBuf, output: PathBuf },
    Check(PathBuf),
    ListProbes(PathBuf),
    ListProbeSites(PathBuf),
}

struct Args {
    mode: Mode,
    allowlist: Option<PathBuf>,
    max_panic_calls: Option<usize>,
    max_frame: Option<u64>,
}

fn parse_args(args: Vec<OsString>) -> Result<Option<Args>, String> {
    let mut allowlist = None;
    let mut max_panic_calls = None;
    let mut max_frame = None;
    let mut check = false;
    let mut list_probes = false;
    let mut list_sites = false;
    let mut positional = Vec::new();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let s = arg.to_string_lossy().into_owned();
        // Accept both `--opt VALUE` and `--opt=VALUE`.
        let (flag, inline) = match s.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (s.clone(), None),
        };
        let mut value = |name: &str| -> Result<OsString, String> {
            match &inline {
                Some(v) => Ok(OsString::from(v)),
                None => it.next().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--allowlist" => allowlist = Some(PathBuf::from(value("--allowlist")?)),
            "--max-panic-calls" => {
                let v = value("--max-panic-calls")?;
                let n = v.to_string_lossy().parse::<usize>().map_err(|_| {
                    format!(
                        "--max-panic-calls: `{}` is not a number",
                        v.to_string_lossy()
                    )
                })?;
                max_panic_calls = Some(n);
            }
            "--max-frame" => {
                let v = value("--max-frame")?;
                let n = v.to_string_lossy().parse::<u64>().map_err(|_| {
                    format!("--max-frame: `{}` is not a number", v.to_string_lossy())
                })?;
                max_frame = Some(n);
            }
            "--check" => check = true,
            "--list-probes" => list_probes = true,
            "--list-probe-sites" => list_sites = true,
            "--" => positional.extend(it.by_ref()),
            f if f.starts_with('-') && f.len() > 1 => return Err(format!("unknown option {f}")),
            _ => positional.push(arg),
        }
    }
    if [check, list_probes, list_sites]
        .iter()
        .filter(|&&b| b)
        .count()
        > 1
    {
        return Err("--check, --list-probes and --list-probe-sites exclude each other".into());
    }
    if list_sites {
        return match positional.len() {
            1 => Ok(Some(Args {
                mode: Mode::ListProbeSites(positional.remove(0).into()),
                allowlist,
                max_panic_calls,
                max_frame,
            })),
            _ => Err("expected exactly one FILE".into()),
        };
    }
    let mode = match (check, list_probes, positional.len()) {
        (false, true, 1) => Mode::ListProbes(positional.remove(0).into()),
        (true, false, 1) => Mode::Check(positional.remove(0).into()),
        (false, false, 2) => {
            let output = positional.remove(1).into();
            Mode::Fix {
                input: positional.remove(0).into(),
                output,
            }
        }
        (false, false, _) => return Err("expected IN and OUT".into()),
        _ => return Err("expected exactly one FILE".into()),
    };
    Ok(Some(Args {
        mode,
        allowlist,
        max_panic_calls,
        max_frame,
    }))
}

/// Prints the violations (stderr) and the summary; returns whether it passed.
fn report(audit: &kmodfix::Audit, summary: String) -> bool {
    for v in &audit.violations {
        eprintln!("kmodfix: error: {}", v.message);
    }
    if audit.passed() {
        println!("{summary}");
        true
    } else {
        eprintln!("{summary}");
        false
    }
}

fn run(args: Args) -> Result<bool, Error> {
    let audit_opts = || -> Result<AuditOptions, Error> {
        Ok(AuditOptions {
            allowlist: match &args.allowlist {
                Some(p) => Allowlist::load(p)?,
                None => Allowlist::default(),
            },
            max_panic_calls: args.max_panic_calls,
            max_frame: args.max_frame,
        })
    };
    match &args.mode {
        Mode::ListProbes(file) => {
            let bytes = kmodfix::read_file(file)?;
            for name in kmodfix::list_probes(&bytes).map_err(|e| e.context(file.display()))? {
                println!("{name}");
            }
            Ok(true)
        }
        Mode::ListProbeSites(file) => {
            let bytes = kmodfix::read_file(file)?;
            let sites = kmodfix::list_probe_sites(&bytes).map_err(|e| e.context(file.display()))?;
            for (function, probe) in sites {
                println!("{function} {probe}");
            }
            Ok(true)
        }
        Mode::Check(file) => {
            let bytes = kmodfix::read_file(file)?;
            let audit =
                kmodfix::audit(&bytes, &audit_opts()?).map_err(|e| e.context(file.display()))?;
            let line = kmodfix::report::summary_line(&file.display().to_string(), &audit, None);
            Ok(report(&audit, line))
        }
        Mode::Fix { input, output } => {
            let opts = Options {
                input: input.clone(),
                output: output.clone(),
                audit: audit_opts()?,
                objcopy: std::env::var_os("OBJCOPY").unwrap_or_else(|| "objcopy".into()),
            };
            let result = kmodfix::run(&opts)?;
            let line = result.summary(&output.display().to_string());
            Ok(report(&result.audit, line))
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args_os().skip(1).collect()) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("kmodfix: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("kmodfix: error: {e}");
            ExitCode::FAILURE
        }
    }
}
