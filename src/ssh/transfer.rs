//! File transfer over a command channel: the remote halves of `put` and `get` as POSIX shell
//! scripts, and the local receiving end.
//!
//! Why not scp or SFTP: no subprocess may run here, and SFTP needs a server subsystem and a
//! second protocol crate; a `cat` on the far side of an exec channel streams at channel speed
//! and needs only `sh`, `cat`, `wc`, `head`, `mv` and `chmod` (every Linux image has them).
//!
//! Integrity: SSH already authenticates every byte, so what can go wrong is truncation (the
//! connection dies mid-way and the far side sees an early end-of-file). Both directions
//! therefore state the size up front and check it before the rename that publishes the file.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use rand::RngExt;
use tokio::io::AsyncWrite;

use super::shell_quote;

/// A fresh temporary name beside `dest`: `dir/.name.cfxm-<random>.tmp`.
pub(crate) fn temp_beside(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.cfxm-{}.tmp", random_tag()))
}

fn random_tag() -> String {
    format!("{:016x}", rand::rng().random::<u64>())
}

/// Deletes a (temp) file when dropped, unless disarmed: every early return of a transfer
/// cleans up after itself.
pub(crate) struct RemoveOnDrop(pub(crate) Option<PathBuf>);

impl RemoveOnDrop {
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A remote path as a shell word: `~/x` and `~` become `"$HOME"/...`; others are quoted.
pub(crate) fn remote_word(path: &str) -> String {
    if path == "~" {
        "\"$HOME\"".into()
    } else if let Some(rest) = path.strip_prefix("~/") {
        format!("\"$HOME\"/{}", shell_quote(rest))
    } else {
        shell_quote(path)
    }
}

/// Receives `size` bytes on stdin into a temp file beside `remote`, checks the size, sets the
/// mode, renames. Exits non-zero with one line on stderr if anything is off; the temp file is
/// removed on every failure path (the `EXIT` trap).
pub(crate) fn put_script(remote: &str, size: u64, mode: u32) -> String {
    format!(
        r#"set -e
p={p}
case "$p" in */*) d="${{p%/*}}"; [ -n "$d" ] || d=/ ;; *) d=. ;; esac
mkdir -p -- "$d"
t="$d/.${{p##*/}}.cfxm-{tag}.tmp"
trap 'rm -f -- "$t"' EXIT
trap 'exit 1' HUP INT TERM PIPE
(umask 077 && cat > "$t")
n=$(wc -c < "$t"); n=$((n))
if [ "$n" -ne {size} ]; then echo "received $n of {size} bytes" >&2; exit 1; fi
chmod {mode:o} "$t"
mv -f -- "$t" "$p"
trap - EXIT"#,
        p = remote_word(remote),
        tag = random_tag(),
        mode = mode & 0o7777,
    )
}

/// Prints the file's size on one line, then exactly that many bytes of it (a file still being
/// appended to, such as a live log, yields a consistent prefix).
pub(crate) fn get_script(remote: &str) -> String {
    format!(
        r#"p={p}
if [ ! -f "$p" ] || [ ! -r "$p" ]; then echo "no readable file $p" >&2; exit 1; fi
n=$(wc -c < "$p") || exit 1
n=$((n))
printf '%s\n' "$n"
exec head -c "$n" -- "$p""#,
        p = remote_word(remote),
    )
}

/// The receiving end of [`get_script`]: reads the size line, then forwards exactly that many
/// bytes to `inner`, refusing any excess.
pub(crate) struct SizedReceiver<W> {
    inner: W,
    header: Vec<u8>,
    expected: Option<u64>,
    received: u64,
}

impl<W> SizedReceiver<W> {
    pub(crate) fn new(inner: W) -> Self {
        SizedReceiver {
            inner,
            header: Vec::new(),
            expected: None,
            received: 0,
        }
    }

    /// `Ok(bytes)` when the whole announced size arrived.
    pub(crate) fn finish(&self) -> Result<u64, String> {
        match self.expected {
            None => Err("the remote side sent no size".into()),
            Some(n) if n == self.received => Ok(n),
            Some(n) => Err(format!("received {} of {n} bytes", self.received)),
        }
    }

    pub(crate) fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for SizedReceiver<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let Some(expected) = this.expected else {
            let bad = |what: &str| {
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    what.to_string(),
                )))
            };
            return match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    this.header.extend_from_slice(&buf[..i]);
                    match std::str::from_utf8(&this.header)
                        .ok()
                        .and_then(|s| s.trim().parse::<u64>().ok())
                    {
                        Some(n) => {
                            this.expected = Some(n);
                            Poll::Ready(Ok(i + 1))
                        }
                        None => bad(
                            "the remote side sent a malformed size line (does the login shell print to stdout on start-up?)",
                        ),
                    }
                }
                None if this.header.len() + buf.len() > 32 => bad(
                    "the remote side sent a malformed size line (does the login shell print to stdout on start-up?)",
                ),
                None => {
                    this.header.extend_from_slice(buf);
                    Poll::Ready(Ok(buf.len()))
                }
            };
        };
        if this.received + buf.len() as u64 > expected {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the remote side sent more than the announced {expected} bytes"),
            )));
        }
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.received += n as u64;
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn sh(script: &str, stdin: &[u8], home: &Path) -> std::process::Output {
        use std::io::Write;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(home)
            .env("HOME", home)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    #[test]
    fn put_script_publishes_only_complete_files() {
        let dir = tempfile::tempdir().unwrap();
        let ok = sh(
            &put_script("~/a b/it's.txt", 5, 0o640),
            b"hello",
            dir.path(),
        );
        assert!(ok.status.success(), "{ok:?}");
        let dest = dir.path().join("a b/it's.txt");
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);

        // Short input (a dropped connection): the old content stays, no temp file is left.
        let short = sh(&put_script("a b/it's.txt", 10, 0o644), b"abc", dir.path());
        assert!(!short.status.success());
        assert_eq!(
            String::from_utf8_lossy(&short.stderr),
            "received 3 of 10 bytes\n"
        );
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("a b"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[tokio::test]
    async fn get_script_and_receiver_agree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"some\nbytes").unwrap();
        let out = sh(&get_script("f"), b"", dir.path());
        assert!(out.status.success());
        let mut rx = SizedReceiver::new(Vec::new());
        // Feed it in awkward pieces, splitting the header.
        for chunk in out.stdout.chunks(1) {
            rx.write_all(chunk).await.unwrap();
        }
        assert_eq!(rx.finish().unwrap(), 10);
        assert_eq!(rx.into_inner(), b"some\nbytes");

        let missing = sh(&get_script("nope"), b"", dir.path());
        assert!(!missing.status.success());
        assert_eq!(
            String::from_utf8_lossy(&missing.stderr),
            "no readable file nope\n"
        );

        let mut short = SizedReceiver::new(Vec::new());
        short.write_all(b"10\nabc").await.unwrap();
        assert_eq!(short.finish().unwrap_err(), "received 3 of 10 bytes");
        let mut long = SizedReceiver::new(Vec::new());
        assert!(long.write_all(b"2\nabc").await.is_err());
    }
}
