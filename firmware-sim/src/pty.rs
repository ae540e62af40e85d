//! A pseudo-terminal for serial-port emulation: the simulator holds the master side and
//! reads and writes it asynchronously; client software opens the slave side (`/dev/pts/N`,
//! or a stable symlink to it) as if it were a USB serial adapter. Used by the ELM327 and
//! SLCAN adapter modes.
//!
//! - The slave is put in raw mode (`cfmakeraw`: no echo, no line editing, no CR/LF
//!   translation), so bytes pass unchanged whatever the client does or does not configure.
//!   Baud rate and parity settings a client makes are accepted and mean nothing.
//! - The simulator keeps its own slave descriptor open for the pty's whole life, so clients
//!   can open and close the path as often as they like: the master never sees a hang-up
//!   (Linux returns `EIO` on a master read once no slave descriptor is open) and what the
//!   client does not read stays queued in the pty, at most a few KiB, until a client reads
//!   or flushes it (`tcflush`, as most serial libraries do on open or before writing).
//! - The master is non-blocking and registered with tokio ([`AsyncFd`]): reads and writes
//!   wait for readiness, they never spin or block a runtime thread.
//! - [`Pty::link`] makes a symlink to the slave at a path the user chose (`--pty-link`),
//!   replacing a stale symlink left by a killed run, and removes it when dropped.
//!
//! Linux only (`openpty`, `/dev/pts`). What it does not do: emulate modem control lines or
//! baud-rate timing.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::pty::openpty;
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Why a pty or its link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PtyError {
    #[error("cannot open a pseudo-terminal: {0}")]
    Open(#[source] Errno),
    #[error("cannot configure the pseudo-terminal: {0}")]
    Configure(#[source] Errno),
    #[error("cannot register the pseudo-terminal with the runtime: {0}")]
    Register(#[source] io::Error),
    #[error("{path} exists and is not a symlink; not replacing it")]
    LinkOccupied { path: PathBuf },
    #[error("cannot create the symlink {path} to {target}: {source}")]
    Link {
        path: PathBuf,
        target: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The master side of a pseudo-terminal, readable and writable with tokio's I/O traits.
#[derive(Debug)]
pub struct Pty {
    master: AsyncFd<OwnedFd>,
    /// Held open so the master never sees a hang-up between clients.
    _slave: OwnedFd,
    slave_path: PathBuf,
}

impl Pty {
    /// Opens a pty pair with the slave in raw mode. Must be called inside a tokio runtime.
    pub fn open() -> Result<Pty, PtyError> {
        let pair = openpty(None, None).map_err(PtyError::Open)?;
        let mut termios = tcgetattr(&pair.slave).map_err(PtyError::Configure)?;
        cfmakeraw(&mut termios);
        tcsetattr(&pair.slave, SetArg::TCSANOW, &termios).map_err(PtyError::Configure)?;
        let flags = fcntl(&pair.master, FcntlArg::F_GETFL).map_err(PtyError::Configure)?;
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        fcntl(&pair.master, FcntlArg::F_SETFL(flags)).map_err(PtyError::Configure)?;
        let slave_path = nix::unistd::ttyname(&pair.slave).map_err(PtyError::Configure)?;
        // `AsyncFd::new` is deprecated because an arbitrary `AsRawFd` may close or swap its fd
        // behind tokio's back; an `OwnedFd` cannot, which is the contract `register` asks
        // for, so this use is sound (and needs no `unsafe`, which the workspace forbids).
        #[allow(deprecated)]
        let master = AsyncFd::new(pair.master).map_err(PtyError::Register)?;
        Ok(Pty {
            master,
            _slave: pair.slave,
            slave_path,
        })
    }

    /// The slave device clients open (`/dev/pts/N`).
    pub fn slave_path(&self) -> &Path {
        &self.slave_path
    }

    /// Creates a symlink at `path` pointing to the slave device. A symlink already there
    /// (left by a run that was killed) is replaced; anything else is an error.
    pub fn link(&self, path: &Path) -> Result<PtyLink, PtyError> {
        let link_error = |source| PtyError::Link {
            path: path.to_owned(),
            target: self.slave_path.clone(),
            source,
        };
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                std::fs::remove_file(path).map_err(link_error)?;
            }
            Ok(_) => {
                return Err(PtyError::LinkOccupied {
                    path: path.to_owned(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(link_error(e)),
        }
        std::os::unix::fs::symlink(&self.slave_path, path).map_err(link_error)?;
        Ok(PtyLink {
            path: path.to_owned(),
            target: self.slave_path.clone(),
        })
    }
}

impl AsyncRead for Pty {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.master.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard
                .try_io(|fd| nix::unistd::read(fd.get_ref(), unfilled).map_err(io::Error::from))
            {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                // Spurious readiness: cleared by try_io; wait again.
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Pty {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.master.poll_write_ready(cx))?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(io::Error::from))
            {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A symlink to a pty's slave, removed on drop if it still points there.
#[derive(Debug)]
pub struct PtyLink {
    path: PathBuf,
    target: PathBuf,
}

impl PtyLink {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PtyLink {
    fn drop(&mut self) {
        if std::fs::read_link(&self.path).is_ok_and(|t| t == self.target)
            && let Err(e) = std::fs::remove_file(&self.path)
        {
            tracing::warn!(path = %self.path.display(), cause = %e, "cannot remove pty symlink");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn open_slave(path: &Path) -> std::fs::File {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap()
    }

    #[tokio::test]
    async fn bytes_pass_both_ways_raw() {
        let mut pty = Pty::open().unwrap();
        let mut slave = open_slave(pty.slave_path());
        use std::io::{Read, Write};
        // CR, LF and control bytes are not translated in raw mode.
        slave.write_all(b"AT Z\r\n\x03\x7F").unwrap();
        let mut got = vec![0; 8];
        pty.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"AT Z\r\n\x03\x7F");
        pty.write_all(b"OK\r\r>").await.unwrap();
        let mut back = [0; 5];
        slave.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"OK\r\r>");
    }

    #[tokio::test]
    async fn clients_come_and_go_without_hangup() {
        let mut pty = Pty::open().unwrap();
        for round in 0..3u8 {
            let mut slave = open_slave(pty.slave_path());
            use std::io::Write;
            slave.write_all(&[round]).unwrap();
            drop(slave);
            let mut b = [0; 1];
            pty.read_exact(&mut b).await.unwrap();
            assert_eq!(b[0], round);
        }
        // With no client, a read waits (no EIO, no spinning) instead of returning.
        let mut b = [0; 1];
        let idle = tokio::time::timeout(Duration::from_millis(100), pty.read(&mut b)).await;
        assert!(idle.is_err(), "read returned without a client: {idle:?}");
    }

    #[tokio::test]
    async fn link_is_created_replaced_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("elm327");
        std::os::unix::fs::symlink("/nonexistent", &path).unwrap();
        let pty = Pty::open().unwrap();
        let link = pty.link(&path).unwrap();
        assert_eq!(std::fs::read_link(&path).unwrap(), pty.slave_path());
        drop(link);
        assert!(std::fs::symlink_metadata(&path).is_err());
        // A regular file is never replaced.
        std::fs::write(&path, b"mine").unwrap();
        assert!(matches!(
            pty.link(&path),
            Err(PtyError::LinkOccupied { .. })
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"mine");
    }
}
