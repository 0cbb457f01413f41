//! Debian's stock kernel booted under QEMU, for tests the host kernel cannot
//! run.
//!
//! The machines we build and test on run a kernel without cls_flower (and
//! newer than the oldest kernel we support, 6.1), so the kernel flower path
//! and the 6.1 verifier are tested in a throwaway VM: Debian's stock kernel,
//! prepared once by `scripts/vm-setup.sh`, booted with virtme-ng (`vng`) under
//! software emulation (TCG; this machine's /dev/kvm cannot run a stock
//! kernel). vng shares the host's root filesystem read-only into the guest, so
//! host binaries (including cargo-built test executables) run there unchanged,
//! with throwaway overlays on /etc, /usr, /var, /tmp... Guest writes never
//! reach the host: results come back through the output and the exit code.
//!
//! Each [`Vm::run`] is one boot (a few seconds to half a minute under TCG,
//! depending on host load). Boots are serialised across processes with a lock
//! file, because two TCG guests on a 2-core machine only slow each other down.
//! See `../shared/recipes/vm-kernel.md` for the measurements behind this.

use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Where `scripts/vm-setup.sh` puts the venv and the kernel unless
/// `PALISADE_VM_CACHE` says otherwise.
pub const DEFAULT_CACHE: &str = "/var/cache/palisade-vm";

/// Set to `1` in the environment of binaries started by [`Vm::run_binary`],
/// so that a test can tell it is running inside the guest (and do the work
/// there instead of booting another VM).
pub const IN_VM_ENV: &str = "PALISADE_IN_VM";

/// Printed by the guest after the command, with its exit status. It makes
/// the status independent of vng passing it back (which fails without udev
/// on the host) and tells "the command exited non-zero" apart from "the
/// guest never got to the end of it" (boot failure, panic, timeout).
const EXIT_MARKER: &str = "PALISADE_VM_EXIT=";

/// Guest paths that virtme-ng hides behind a fresh tmpfs: host files under
/// them are not visible in the guest unless mounted explicitly.
const HIDDEN_IN_GUEST: &[&str] = &["/var/cache", "/var/tmp", "/var/log", "/var/lib/apt", "/var/lib/private"];

/// A prepared kernel and the vng to boot it with. Creating one runs nothing.
#[derive(Debug, Clone)]
pub struct Vm {
    /// `<cache>/kernel/boot/vmlinuz-<release>`.
    kernel: PathBuf,
    /// `<cache>/kernel`: the unpacked .deb, whose `lib/modules/<release>`
    /// vng links into the guest's /lib/modules.
    kernel_root: PathBuf,
    /// `<cache>/vng/bin/vng`.
    vng: PathBuf,
    /// Guest memory as vng's `--memory` takes it.
    memory: String,
}

/// What a command run in the guest returned.
#[derive(Debug, Clone)]
pub struct VmOutput {
    /// The command's exit status in the guest.
    pub code: i32,
    /// Its stdout and stderr as they arrived on the host, interleaved, with
    /// NUL bytes and `\r` removed; also holds anything vng or QEMU printed.
    pub output: String,
    /// Wall time of the whole run: boot, command and shutdown (not the wait
    /// for another boot to finish).
    pub elapsed: Duration,
}

impl Vm {
    /// Finds the kernel and vng that `scripts/vm-setup.sh` prepared in
    /// `PALISADE_VM_CACHE` (default [`DEFAULT_CACHE`]). Runs nothing.
    pub fn from_cache() -> Result<Vm, String> {
        let cache = std::env::var_os("PALISADE_VM_CACHE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE));
        Vm::from_cache_dir(&cache)
    }

    /// Like [`Vm::from_cache`], for an explicit cache directory.
    pub fn from_cache_dir(cache: &Path) -> Result<Vm, String> {
        let setup = "run `bash scripts/vm-setup.sh` as root (it honours PALISADE_VM_CACHE)";
        let vng = cache.join("vng/bin/vng");
        if !vng.is_file() {
            return Err(format!("virtme-ng not found at {}: {setup}", vng.display()));
        }
        let kernel_root = cache.join("kernel");
        let boot = kernel_root.join("boot");
        let mut kernels: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir(&boot)
            .map_err(|e| format!("no unpacked kernel in {} ({e}): {setup}", boot.display()))?
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let release = path.file_name()?.to_str()?.strip_prefix("vmlinuz-")?.to_owned();
                Some((version_key(&release), path))
            })
            .collect();
        // Several unpacked kernels would be a hand-made setup; take the newest.
        kernels.sort();
        let Some((_, kernel)) = kernels.pop() else {
            return Err(format!("no vmlinuz-* in {}: {setup}", boot.display()));
        };
        let vm = Vm {
            kernel,
            kernel_root,
            vng,
            memory: "512M".to_owned(),
        };
        let modules = vm.kernel_root.join("lib/modules").join(vm.kernel_release());
        if !modules.is_dir() {
            return Err(format!(
                "{} is missing (partly unpacked kernel?): {setup}",
                modules.display()
            ));
        }
        for tool in ["qemu-system-x86_64", "udevadm", "depmod"] {
            if find_in_path(tool).is_none() {
                return Err(format!("`{tool}` is not installed on the host: {setup}"));
            }
        }
        Ok(vm)
    }

    /// Guest memory for later boots, in vng's `--memory` syntax (default
    /// `512M`; a flower/XDP test uses ~135 MB of it).
    pub fn with_memory(mut self, memory: &str) -> Vm {
        self.memory = memory.to_owned();
        self
    }

    /// The kernel image that will be booted.
    pub fn kernel_image(&self) -> &Path {
        &self.kernel
    }

    /// The guest kernel's release, e.g. `6.1.0-56-amd64` (what `uname -r`
    /// prints inside), taken from the image's file name.
    pub fn kernel_release(&self) -> String {
        let name = self.kernel.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        name.strip_prefix("vmlinuz-").unwrap_or(name).to_owned()
    }

    /// Boots the kernel once and runs `command` (a `sh` command line) as
    /// root inside, in the host's current directory, then powers off.
    ///
    /// Returns the command's exit status and output. Err when the guest did
    /// not get to the end of the command (vng missing, boot failure, kernel
    /// panic) or `timeout` passed (the VM is then killed); the message holds
    /// whatever output there was. The timeout counts from the start of this
    /// boot, not from the wait for another process's boot to end.
    pub fn run(&self, command: &str, timeout: Duration) -> Result<VmOutput, String> {
        self.run_with(command, &[], timeout)
    }

    /// Runs a host binary (an absolute path, e.g. a cargo-built test
    /// executable) inside the guest with `args` and the environment
    /// variables `env` added, and reports one verdict: Ok(output) when it
    /// exited with 0, Err(explanation with the exit status and the output)
    /// otherwise, including when the guest failed.
    ///
    /// The binary also sees [`IN_VM_ENV`]`=1`. It runs in the host's current
    /// directory (cargo runs tests in their package's directory). The host
    /// filesystem is read-only in the guest except for throwaway overlays,
    /// so write scratch files under /tmp.
    pub fn run_binary(
        &self,
        binary: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<String, String> {
        if !binary.is_absolute() {
            return Err(format!("{}: give the binary as an absolute path", binary.display()));
        }
        if !binary.is_file() {
            return Err(format!("{}: no such file on the host", binary.display()));
        }
        let mut command = format!("env {IN_VM_ENV}=1");
        for (key, value) in env {
            command.push(' ');
            command.push_str(&shell_quote(&format!("{key}={value}")));
        }
        command.push(' ');
        command.push_str(&shell_quote(&binary.to_string_lossy()));
        for arg in args {
            command.push(' ');
            command.push_str(&shell_quote(arg));
        }
        // A binary under a directory the guest hides would not be found.
        let dir = binary.parent().unwrap_or(Path::new("/"));
        let extra: Vec<&Path> = if HIDDEN_IN_GUEST.iter().any(|h| dir.starts_with(h)) {
            vec![dir]
        } else {
            vec![]
        };
        let out = self.run_with(&command, &extra, timeout)?;
        if out.code == 0 {
            Ok(out.output)
        } else {
            Err(format!(
                "{} exited with status {} in the VM (kernel {}) after {:.1} s; its output:\n{}",
                binary.display(),
                out.code,
                self.kernel_release(),
                out.elapsed.as_secs_f64(),
                out.output
            ))
        }
    }

    /// [`Vm::run`], with host directories `ro_dirs` mounted read-only at
    /// the same paths in the guest.
    fn run_with(&self, command: &str, ro_dirs: &[&Path], timeout: Duration) -> Result<VmOutput, String> {
        // The subshell lets `command` use `exit` and still reach the marker.
        let script = format!("(\n{command}\n); rc=$?; printf '{EXIT_MARKER}%d\\n' \"$rc\"; exit \"$rc\"");
        let mut cmd = Command::new(&self.vng);
        cmd.args([
            "--disable-kvm",
            "--force-9p",
            "--user",
            "root",
            "--memory",
            &self.memory,
        ]);
        cmd.arg("--qemu-opts=-accel tcg,tb-size=64");
        // The cache is usually under /var/cache, which the guest hides; the
        // kernel's modules must be visible for modprobe.
        for dir in std::iter::once(self.kernel_root.as_path()).chain(ro_dirs.iter().copied()) {
            let mut spec = OsString::from(dir);
            spec.push("=");
            spec.push(dir);
            cmd.arg("--rodir").arg(spec);
        }
        cmd.arg("--run").arg(&self.kernel).arg("--exec").arg(&script);
        // vng runs `virtme-run` by name.
        let mut path = OsString::from(self.vng.parent().unwrap_or(Path::new("/")));
        if let Some(old) = std::env::var_os("PATH") {
            path.push(":");
            path.push(old);
        }
        cmd.env("PATH", path);

        let _lock = BootLock::acquire()?;
        let (mut reader, writer) = std::io::pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
        let writer2 = writer.try_clone().map_err(|e| format!("cannot clone a pipe: {e}"))?;
        cmd.stdin(Stdio::null()).stdout(writer).stderr(writer2);
        // Own process group, so a timeout can kill vng and QEMU together.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);

        let start = Instant::now();
        let mut child = cmd.spawn().map_err(|e| {
            format!(
                "cannot start {} ({e}): run `bash scripts/vm-setup.sh` as root",
                self.vng.display()
            )
        })?;
        // Drop our copies of the pipe's write end, or the reader never sees EOF.
        drop(cmd);
        let collector = thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = reader.read_to_end(&mut bytes);
            bytes
        });

        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if start.elapsed() >= timeout => break None,
                Ok(None) => thread::sleep(Duration::from_millis(50)),
                Err(e) => {
                    kill_group(child.id());
                    return Err(format!("waiting for vng failed: {e}"));
                }
            }
        };
        if status.is_none() {
            kill_group(child.id());
            let _ = child.kill();
            let _ = child.wait();
        }
        let elapsed = start.elapsed();
        let raw = collector.join().unwrap_or_default();
        let text: String = String::from_utf8_lossy(&raw)
            .chars()
            .filter(|&c| c != '\0' && c != '\r')
            .collect();

        let Some(status) = status else {
            return Err(format!(
                "the VM did not finish within {} s and was killed; output so far:\n{text}",
                timeout.as_secs()
            ));
        };
        match split_marker(&text) {
            Some((code, output)) => Ok(VmOutput { code, output, elapsed }),
            None => Err(format!(
                "the command did not complete in the VM (vng exited with {status} after {:.1} s; boot failure or \
                 kernel panic?); output:\n{text}",
                elapsed.as_secs_f64()
            )),
        }
    }
}

/// The project's skip policy for VM tests: the prepared [`Vm`], or None
/// after printing why `test` is skipped. With
/// `PALISADE_REQUIRE_ROOT_TESTS=1` (as in CI) a missing VM is a failure and
/// this panics instead.
pub fn require_vm(test: &str) -> Option<Vm> {
    match Vm::from_cache() {
        Ok(vm) => Some(vm),
        Err(why) => {
            let required = std::env::var("PALISADE_REQUIRE_ROOT_TESTS").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{test}: the VM is not prepared and PALISADE_REQUIRE_ROOT_TESTS=1: {why}"
            );
            eprintln!("skipped {test}: {why}");
            None
        }
    }
}

/// Whether this process runs inside the guest (started by
/// [`Vm::run_binary`]).
pub fn in_vm() -> bool {
    std::env::var(IN_VM_ENV).is_ok_and(|v| v == "1")
}

/// Separates the exit marker from the output: (status, output without the
/// marker line). The last marker counts, in case the command printed one.
fn split_marker(text: &str) -> Option<(i32, String)> {
    let at = text.rfind(EXIT_MARKER)?;
    let rest = &text[at + EXIT_MARKER.len()..];
    let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    let code = rest[..digits].parse().ok()?;
    let after = rest[digits..].strip_prefix('\n').unwrap_or(&rest[digits..]);
    Some((code, format!("{}{after}", &text[..at])))
}

/// `s` as one `sh` word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Numeric parts of a kernel release, to order `6.1.0-9` before `6.1.0-10`.
fn version_key(release: &str) -> Vec<u64> {
    release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    // udevadm and depmod live in sbin, which a non-root PATH may lack.
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Kills vng's process group (vng, QEMU and helpers).
fn kill_group(pgid: u32) {
    let _ = Command::new("sh")
        .args(["-c", &format!("kill -s KILL -- -{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// An exclusive lock held for the duration of one boot, shared by all test
/// processes of the machine (cargo and nextest run tests in parallel).
struct BootLock(#[allow(dead_code)] File);

impl BootLock {
    fn acquire() -> Result<BootLock, String> {
        let path = std::env::temp_dir().join("palisade-vm.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open the boot lock {}: {e}", path.display()))?;
        file.lock()
            .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
        Ok(BootLock(file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_is_split_off() {
        assert_eq!(
            split_marker("a\nb\nPALISADE_VM_EXIT=3\n"),
            Some((3, "a\nb\n".to_owned()))
        );
        assert_eq!(
            split_marker("partialPALISADE_VM_EXIT=0\nlate\n"),
            Some((0, "partiallate\n".to_owned()))
        );
        assert_eq!(split_marker("no marker\n"), None);
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn releases_order_numerically() {
        assert!(version_key("6.1.0-9-amd64") < version_key("6.1.0-10-amd64"));
    }
}
