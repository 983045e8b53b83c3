//! A private OpenSSH server on loopback that the real ascp can log in to.

use std::ffi::OsString;
use std::fmt::{self, Write as _};
use std::fs;
use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::procs;

/// Where the server binary is looked for unless `FASP_SSHD` names another.
pub const DEFAULT_SSHD: &str = "/usr/sbin/sshd";

/// How long one start attempt waits for sshd to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Start attempts (a port picked as free can be taken by someone else before sshd binds it).
const START_ATTEMPTS: usize = 5;

/// The sshd binary to use: `FASP_SSHD` when set, else [`DEFAULT_SSHD`].
pub fn sshd_path() -> PathBuf {
    std::env::var_os("FASP_SSHD")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_SSHD), PathBuf::from)
}

/// An OpenSSH server of its own, listening on `127.0.0.1` at a free port, that accepts one
/// generated key for the current user, with the legacy algorithms ascp 3.9's built-in SSH
/// client needs enabled.
///
/// Everything lives in a temporary folder: client key (PEM RSA, the only private key
/// format that ascp 3.9 reads), host key, `authorized_keys`, `sshd_config`, pid file and
/// sshd's log. sshd runs in the foreground (`-D -e`) as a child of the test, in its own
/// process group. Dropping the server kills sshd, its process group and every process it
/// started (session processes and the remote ascp or script they run, which sshd moves
/// into sessions of their own), reaps sshd and removes the folder.
///
/// The configuration sets `StrictModes no`: the files and the folder are created owned by
/// the user and not group or world writable, but sshd's check also walks every ancestor
/// folder up to `/`, and a temporary folder under `/tmp` (mode 1777) fails it.
pub struct SshServer {
    dir: TempDir,
    child: Option<Child>,
    port: u16,
    user: String,
    client_key: PathBuf,
}

impl fmt::Debug for SshServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshServer")
            .field("dir", &self.dir.path())
            .field("pid", &self.pid())
            .field("port", &self.port)
            .field("user", &self.user)
            .finish()
    }
}

impl SshServer {
    /// Generate keys and configuration, start sshd and wait until it accepts connections.
    ///
    /// Needs `sshd` (see [`sshd_path`]) and `ssh-keygen`. As root it creates
    /// `/run/sshd`, the privilege-separation folder sshd insists on.
    pub fn start() -> io::Result<Self> {
        let sshd = sshd_path();
        if !sshd.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} not found (install openssh-server)", sshd.display()),
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("fasp-testkit-sshd.")
            .tempdir()?;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))?;
        let user = crate::current_user()?;

        let client_key = dir.path().join("client_key");
        keygen(&client_key, true)?;
        keygen(&dir.path().join("host_key"), false)?;
        let authorized = dir.path().join("authorized_keys");
        fs::copy(client_key.with_extension("pub"), &authorized)?;
        fs::set_permissions(&authorized, fs::Permissions::from_mode(0o600))?;

        if nix::unistd::geteuid().is_root() {
            fs::create_dir_all("/run/sshd")?;
        }

        let mut server = Self {
            dir,
            child: None,
            port: 0,
            user,
            client_key,
        };
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            match server.try_launch(&sshd) {
                Ok(()) => return Ok(server),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("sshd did not start")))
    }

    /// One attempt: pick a port, write the config, start sshd, wait until it listens.
    fn try_launch(&mut self, sshd: &Path) -> io::Result<()> {
        let port = free_port()?;
        let config = self.dir.path().join("sshd_config");
        fs::write(&config, self.config_text(port))?;
        let log_path = self.log_path();
        let log = fs::File::create(&log_path)?;

        let mut child = Command::new(sshd)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot start {}: {e}", sshd.display()))
            })?;

        let deadline = Instant::now() + START_TIMEOUT;
        let listening = format!("Server listening on 127.0.0.1 port {port}");
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(io::Error::other(format!(
                    "sshd exited with {status} before listening; its log:\n{}",
                    self.log()
                )));
            }
            // Our own sshd announces the port, so a stranger that grabbed the port between
            // our probe and sshd's bind cannot be mistaken for it.
            if self.log().contains(&listening)
                && TcpStream::connect_timeout(
                    &(Ipv4Addr::LOCALHOST, port).into(),
                    Duration::from_secs(1),
                )
                .is_ok()
            {
                self.port = port;
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "sshd did not listen on port {port} within {START_TIMEOUT:?}; its log:\n{}",
                        self.log()
                    ),
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn config_text(&self, port: u16) -> String {
        let d = self.dir.path().display();
        let mut c = String::new();
        let _ = writeln!(c, "# Written by fasp-testkit for one test run.");
        let _ = writeln!(c, "Port {port}");
        let _ = writeln!(c, "ListenAddress 127.0.0.1");
        let _ = writeln!(c, "HostKey {d}/host_key");
        let _ = writeln!(c, "PidFile {d}/sshd.pid");
        let _ = writeln!(c, "AuthorizedKeysFile {d}/authorized_keys");
        let _ = writeln!(c, "AllowUsers {}", self.user);
        c.push_str(
            "PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\n\
             PermitRootLogin yes\n\
             StrictModes no\n\
             UsePAM no\n\
             UseDNS no\n\
             PrintMotd no\n\
             # ascp 3.9's SSH client only speaks these older algorithms.\n\
             HostKeyAlgorithms +ssh-rsa\n\
             PubkeyAcceptedAlgorithms +ssh-rsa\n\
             KexAlgorithms +diffie-hellman-group14-sha1,diffie-hellman-group1-sha1,diffie-hellman-group-exchange-sha1\n\
             Ciphers +aes128-cbc,aes256-cbc,3des-cbc\n\
             MACs +hmac-sha1\n",
        );
        c
    }

    /// The port sshd listens on (on `127.0.0.1`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host to give ascp: `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The user the key logs in as: the user running the tests.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The authorized private key (PEM RSA, no passphrase), for ascp's `-i`.
    pub fn client_key_path(&self) -> &Path {
        &self.client_key
    }

    /// The server's temporary folder (unique to this server: a good needle for
    /// [`crate::assert_no_leftover`]).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// sshd's process id (also its process group id).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("sshd.log")
    }

    /// What sshd has logged so far (`-e`: its log goes to a file in the folder). Useful in
    /// assertion messages: it says why a login was refused.
    pub fn log(&self) -> String {
        fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Generate a fresh PEM RSA key that is *not* authorized, in the server's folder, and
    /// return its path (for wrong-key tests).
    pub fn unauthorized_key(&self) -> io::Result<PathBuf> {
        let path = self.dir.path().join(format!(
            "stranger_key_{}",
            fs::read_dir(self.dir.path())?.count()
        ));
        keygen(&path, true)?;
        Ok(path)
    }

    /// Write an executable script into the server's folder and return its path; give it to
    /// ascp with `-S` to control what runs as the "remote ascp" (for example one that sleeps
    /// to hold a session in initiation). `body` is written as is: start it with `#!`.
    pub fn write_remote_script(&self, name: &str, body: &str) -> io::Result<PathBuf> {
        if name.is_empty() || name.contains('/') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "script name must be a plain file name",
            ));
        }
        let path = self.dir.path().join(name);
        fs::write(&path, body)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        Ok(path)
    }

    /// The ascp options that reach this server with the authorized key:
    /// `-P <port> -i <key> --host=127.0.0.1 --user=<user>`, plus `-S <remote_ascp>` when given.
    pub fn ascp_args(&self, remote_ascp: Option<&Path>) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec![
            "-P".into(),
            self.port.to_string().into(),
            "-i".into(),
            self.client_key.clone().into(),
            format!("--host={}", self.host()).into(),
            format!("--user={}", self.user).into(),
        ];
        if let Some(remote) = remote_ascp {
            v.push("-S".into());
            v.push(remote.into());
        }
        v
    }

    /// Stop sshd and everything it started, and reap sshd. Also done on drop.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id();
        // Session processes call setsid(), so the group signal does not reach them: find
        // them through /proc before sshd dies and they are re-parented.
        let descendants = procs::descendants(pid);
        let _ = procs::signal_group(pid, Signal::SIGKILL);
        for p in &descendants {
            let _ = procs::send_signal(p.pid, Signal::SIGKILL);
        }
        let _ = child.kill();
        let _ = child.wait();
        // A session whose client went away (an ascp killed in session initiation) may have
        // ended already, its command (a script of this server's folder) re-parented to init:
        // the server's folder in its command line finds it.
        let folder = self.dir.path().to_string_lossy().into_owned();
        let me = std::process::id();
        for p in procs::all_processes() {
            if p.pid != me && p.cmdline.contains(&folder) {
                let _ = procs::send_signal(p.pid, Signal::SIGKILL);
            }
        }
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `ssh-keygen` an RSA 2048 key without passphrase; `pem` selects the old PEM format.
fn keygen(path: &Path, pem: bool) -> io::Result<()> {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args([
        "-q",
        "-t",
        "rsa",
        "-b",
        "2048",
        "-N",
        "",
        "-C",
        "fasp-testkit",
    ]);
    if pem {
        cmd.args(["-m", "PEM"]);
    }
    let out = cmd
        .arg("-f")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run ssh-keygen: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ssh-keygen -f {} failed with {}: {}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        )))
    }
}

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}
