//! `atoll-vm IMAGE [--uefi] [--exec CMD]...`: boot an image under QEMU (TCG), wait until the
//! system is up with no failed unit, run each command in the guest printing its output, power off.

use std::path::PathBuf;
use std::process::ExitCode;

use vmtest::{Firmware, Vm, VmConfig};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut image = None;
    let mut cfg = VmConfig::default();
    let mut execs = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--uefi" => cfg.firmware = Firmware::Uefi,
            "--exec" => execs.push(args.next().unwrap_or_default()),
            _ if image.is_none() && !a.starts_with('-') => image = Some(PathBuf::from(a)),
            _ => {
                eprintln!("usage: atoll-vm IMAGE [--uefi] [--exec CMD]...");
                return ExitCode::from(2);
            }
        }
    }
    let Some(image) = image else {
        eprintln!("usage: atoll-vm IMAGE [--uefi] [--exec CMD]...");
        return ExitCode::from(2);
    };
    let run = || -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        eprintln!("booting {} ({:?}, TCG)...", image.display(), cfg.firmware);
        let mut vm = Vm::boot(&image, cfg.clone())?;
        vm.wait_ready()?;
        eprintln!("up with no failed unit after {:.0}s", started.elapsed().as_secs_f64());
        for e in &execs {
            println!("$ {e}");
            let out = vm.exec(e)?;
            print!("{}{}", out.stdout, out.stderr);
            if out.code != 0 {
                anyhow::bail!("`{e}` exited {}", out.code);
            }
        }
        vm.shutdown()
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
