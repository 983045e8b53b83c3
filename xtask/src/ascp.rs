//! `cargo xtask ascp`: install the real `ascp` 3.9.0 shipped in IBM's `cos-aspera` wheel.
//!
//! The wheel is fetched with `python3 -m pip download` (it is tagged for CPython 3.6 on
//! manylinux1, hence the explicit platform flags), checked against a pinned SHA-256, and its
//! whole `cos_aspera` folder is unpacked into `target/ascp/cos_aspera/`: ascp looks for its
//! `aspera-license` beside itself, and without it every rate option is silently ignored.
//! The install is accepted only when the binary's hash matches and `ascp -A` reports
//! `License max rate=(unlimited)`.
//!
//! Nothing here is committed: `target/` is ignored. The tests receive the binary's path in
//! the environment variable `FASP_ASCP`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use clap::Args;
use sha2::{Digest, Sha256};

use crate::util::{display, project_root};

/// The PyPI requirement holding the binary.
const PACKAGE: &str = "cos-aspera==0.1.163682";
/// File name pip saves the wheel under.
const WHEEL: &str = "cos_aspera-0.1.163682-cp36-cp36m-manylinux1_x86_64.whl";
/// SHA-256 of the wheel.
const WHEEL_SHA256: &str = "0a4394d03972ce469e6e7295b797e882535f18e46fdc7b52ed73f5d9442aa191";
/// The folder inside the wheel that is installed as a whole.
const WHEEL_FOLDER: &str = "cos_aspera-0.1.163682.data/purelib/cos_aspera/";
/// SHA-256 of the `ascp` binary inside that folder.
const ASCP_SHA256: &str = "44f6e81ea1cb0ea73015805fdfc90a4c9f2dd81474e2c75120eb990b393cd578";
/// What `ascp -A` prints when it found its licence file.
const LICENSE_OK: &str = "License max rate=(unlimited)";

/// The folders this task works in, all below `target/ascp/`.
struct Layout {
    download: PathBuf,
    install: PathBuf,
    staging: PathBuf,
}

impl Layout {
    fn new() -> Self {
        let base = project_root().join("target").join("ascp");
        Self {
            download: base.join("download"),
            install: base.join("cos_aspera"),
            staging: base.join("cos_aspera.partial"),
        }
    }

    fn ascp(&self) -> PathBuf {
        self.install.join("ascp")
    }

    fn wheel(&self) -> PathBuf {
        self.download.join(WHEEL)
    }
}

/// `cargo xtask ascp [--force]`.
#[derive(Args, Debug)]
pub(crate) struct AscpArgs {
    /// Download and install again even when a verified install is there
    #[arg(long)]
    force: bool,
}

/// `cargo xtask ascp [--force]`: install ascp and an OpenSSH server, print the binary's path.
pub(crate) fn run(args: &AscpArgs) -> Result<(), String> {
    let ascp = ensure_installed(args.force)?;
    ensure_sshd()?;
    println!("{}", ascp.display());
    Ok(())
}

/// Install ascp if needed and return the path of the binary.
///
/// Idempotent: an existing install whose binary hash matches and whose licence check passes
/// is left alone unless `force` is set.
pub(crate) fn ensure_installed(force: bool) -> Result<PathBuf, String> {
    let layout = Layout::new();
    let ascp = layout.ascp();
    if !force && ascp.is_file() {
        match verify_install(&ascp) {
            Ok(()) => {
                eprintln!("ascp: already installed at {}", ascp.display());
                return Ok(ascp);
            }
            Err(e) => eprintln!("ascp: existing install rejected ({e}); reinstalling"),
        }
    }

    let wheel = fetch_wheel(&layout, force)?;
    unpack(&wheel, &layout)?;
    verify_install(&ascp)?;
    eprintln!("ascp: installed {}", ascp.display());
    Ok(ascp)
}

/// The binary has the pinned hash, runs, and found its licence.
fn verify_install(ascp: &Path) -> Result<(), String> {
    check_sha256(ascp, ASCP_SHA256)?;
    let out = capture(Command::new(ascp).arg("-A"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(format!(
            "`{} -A` failed with {}:\n{}",
            ascp.display(),
            out.status,
            text.trim_end()
        ));
    }
    if !text.contains(LICENSE_OK) {
        return Err(format!(
            "`{} -A` does not report `{LICENSE_OK}`; is `aspera-license` beside the binary?\n{}",
            ascp.display(),
            text.trim_end()
        ));
    }
    Ok(())
}

/// Return a verified wheel, downloading it unless a good one is already there.
fn fetch_wheel(layout: &Layout, force: bool) -> Result<PathBuf, String> {
    let wheel = layout.wheel();
    if !force && wheel.is_file() && check_sha256(&wheel, WHEEL_SHA256).is_ok() {
        return Ok(wheel);
    }
    if wheel.exists() {
        fs::remove_file(&wheel).map_err(|e| format!("remove {}: {e}", wheel.display()))?;
    }
    fs::create_dir_all(&layout.download)
        .map_err(|e| format!("create {}: {e}", layout.download.display()))?;

    let pip_ok = Command::new("python3")
        .args(["-m", "pip", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !pip_ok {
        return Err(
            "`python3 -m pip` is not available; install Python 3 with pip \
                    (Debian: apt-get install python3-pip) and retry"
                .into(),
        );
    }

    let mut pip = Command::new("python3");
    pip.args([
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "36",
        "--platform",
        "manylinux1_x86_64",
        "--disable-pip-version-check",
        "-d",
    ])
    .arg(&layout.download)
    .arg(PACKAGE);
    crate::util::run(&mut pip)?;

    if !wheel.is_file() {
        return Err(format!(
            "pip finished but {} is not there (did the package's wheel name change?)",
            wheel.display()
        ));
    }
    check_sha256(&wheel, WHEEL_SHA256)?;
    Ok(wheel)
}

/// Unpack the wheel's `cos_aspera` folder into the install folder, replacing it.
///
/// The folder is first written next to its final place and renamed once complete, so an
/// interrupted run never leaves a half-populated install behind.
fn unpack(wheel: &Path, layout: &Layout) -> Result<(), String> {
    remove_dir_if_present(&layout.staging)?;
    // Python's zipfile is always there when pip is, whereas `unzip` often is not. It does
    // not restore Unix modes on its own, so the script applies them from the archive.
    const SCRIPT: &str = r#"
import os, sys, zipfile
wheel, prefix, dest = sys.argv[1], sys.argv[2], sys.argv[3]
count = 0
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        name = info.filename
        if not name.startswith(prefix) or name == prefix:
            continue
        rel = name[len(prefix):]
        if rel.startswith("/") or ".." in rel.split("/"):
            sys.exit("unsafe path in wheel: " + name)
        target = os.path.join(dest, rel)
        if name.endswith("/"):
            os.makedirs(target, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(info) as src, open(target, "wb") as out:
            while True:
                chunk = src.read(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
        mode = (info.external_attr >> 16) & 0o777
        if mode:
            os.chmod(target, mode)
        count += 1
if count == 0:
    sys.exit("no files under " + prefix + " in " + wheel)
print(count)
"#;
    let out = capture(
        Command::new("python3")
            .arg("-c")
            .arg(SCRIPT)
            .arg(wheel)
            .arg(WHEEL_FOLDER)
            .arg(&layout.staging),
    )?;
    if !out.status.success() {
        return Err(format!(
            "unpacking {} failed: {}",
            wheel.display(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        ));
    }

    let ascp = layout.staging.join("ascp");
    set_executable(&ascp)?;
    check_sha256(&ascp, ASCP_SHA256)?;

    remove_dir_if_present(&layout.install)?;
    fs::rename(&layout.staging, &layout.install).map_err(|e| {
        format!(
            "rename {} to {}: {e}",
            layout.staging.display(),
            layout.install.display()
        )
    })
}

fn set_executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut perms = meta.permissions();
    perms.set_mode(perms.mode() | 0o755);
    fs::set_permissions(path, perms).map_err(|e| format!("chmod +x {}: {e}", path.display()))
}

fn remove_dir_if_present(dir: &Path) -> Result<(), String> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("remove {}: {e}", dir.display())),
    }
}

/// Compare a file's SHA-256 with the expected lowercase hex digest.
fn check_sha256(path: &Path, expected: &str) -> Result<(), String> {
    let actual = sha256(path)?;
    if actual == expected {
        Ok(())
    } else {
        Err(format!(
            "SHA-256 mismatch for {}\n  expected {expected}\n  actual   {actual}",
            path.display()
        ))
    }
}

/// The SHA-256 of a file's content as lowercase hex, read in a streaming way (the wheel is
/// tens of MiB).
fn sha256(path: &Path) -> Result<String, String> {
    let mut file = fs::File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).map_err(|e| format!("read {}: {e}", path.display()))?;
    // The digest (a `GenericArray`) formats itself as lowercase hex.
    Ok(format!("{:x}", hasher.finalize()))
}

/// Run a command with no stdin and collect its output; failing to start it is an error.
fn capture(cmd: &mut Command) -> Result<Output, String> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `{}`: {e}", display(cmd)))
}

/// Make sure an OpenSSH server binary is there for the real-ascp tests.
///
/// The tests start their own `sshd` on loopback; this only checks that `/usr/sbin/sshd` and
/// `ssh-keygen` exist and, as root on a Debian-like system, installs them when missing.
pub(crate) fn ensure_sshd() -> Result<(), String> {
    const SSHD: &str = "/usr/sbin/sshd";
    let missing = |sshd: bool, keygen: bool| {
        let mut v = Vec::new();
        if sshd {
            v.push("openssh-server");
        }
        if keygen {
            v.push("openssh-client");
        }
        v
    };
    let need = missing(!Path::new(SSHD).is_file(), !has_ssh_keygen());
    if need.is_empty() {
        return Ok(());
    }

    if !crate::util::is_root() {
        return Err(format!(
            "the real-ascp tests need {SSHD} and ssh-keygen; install {} \
             (for example `sudo apt-get install {}`) or run this as root",
            need.join(" and "),
            need.join(" ")
        ));
    }
    crate::util::apt_install(&["openssh-server", "openssh-client"], &need.join(" and "))?;

    if !Path::new(SSHD).is_file() {
        return Err(format!(
            "openssh-server was installed but {SSHD} is still missing"
        ));
    }
    if !has_ssh_keygen() {
        return Err("openssh-client was installed but ssh-keygen is still missing".into());
    }
    Ok(())
}

fn has_ssh_keygen() -> bool {
    // `ssh-keygen` has no --version; running it with a bad option still proves it exists.
    Command::new("ssh-keygen")
        .arg("-?")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_a_file() {
        let dir = std::env::temp_dir().join(format!("xtask-sha-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty");
        let abc = dir.join("abc");
        fs::write(&empty, b"").unwrap();
        fs::write(&abc, b"abc").unwrap();
        // FIPS 180-2 test vectors.
        assert_eq!(
            sha256(&empty).unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let abc_digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256(&abc).unwrap(), abc_digest);
        assert!(check_sha256(&abc, abc_digest).is_ok());
        let err = check_sha256(&empty, abc_digest).unwrap_err();
        assert!(err.contains("mismatch") && err.contains("empty"), "{err}");
        let err = sha256(&dir.join("missing")).unwrap_err();
        assert!(err.contains("missing"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
