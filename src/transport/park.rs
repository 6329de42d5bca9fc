//! Parking idle connections.
//!
//! A connection served by its task holds that task, its buffers and glommio's
//! io_uring poll state for its socket: together about 1 KiB, which for a million
//! mostly idle devices is most of the broker's memory. So a connection that has
//! had nothing to read, write or send for `runtime.park_after` is parked: its task
//! ends, and what the connection must remember (session slot, will, aliases,
//! authentication) moves into a 64-byte record in the shard's parking lot. Its
//! socket is registered, one-shot, in an epoll set of the shard's own.
//!
//! One thread per shard, pinned beside it, sleeps in `epoll_wait` on that set. When
//! a parked socket becomes readable (or the peer hangs up) the thread writes the
//! connection's token to a socket pair the shard reads through io_uring, and the
//! shard resumes the connection in a new task, which reads what arrived as any
//! connection does. Everything else that concerns a parked connection (a delivery
//! for its session, a takeover, its keep alive running out, shutdown) reaches it
//! through its `ConnHandle`, whose wake-up schedules the resumed task at once. The
//! client sees nothing of this.
//!
//! A park and a resume cost seven system calls (counted with strace: `fcntl`
//! duplicating the descriptor, `epoll_ctl` ADD and `close` to park; the thread's
//! `epoll_wait` return and `sendto`, the shard's `recvfrom` and `epoll_ctl` DEL to
//! resume), paid at most once per `park_after` per connection, never on a busy one.
//! The parked socket keeps one descriptor: its glommio stream is closed after the
//! descriptor is duplicated, and a resumed connection's stream takes it over.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::rc::Rc;
use std::sync::Arc;

use futures_lite::AsyncReadExt;

use super::conn::Parked;
use crate::shard::{Shard, Slab, TICK};

/// The watcher's token for its own end of the socket pair: the shard closed it.
const STOP: u64 = u64::MAX;
/// Events taken from the kernel per `epoll_wait`.
const EVENTS: usize = 1024;

/// A shard's parked connections and the epoll set their sockets wait in.
pub(crate) struct Parking {
    /// Ticks of idleness after which a connection parks (0: never).
    pub after_ticks: u64,
    epoll: Option<Arc<OwnedFd>>,
    lot: RefCell<Slab<Parked>>,
    /// Tells a resume from an earlier parking under the same key.
    seq: Cell<u32>,
}

impl Parking {
    /// Parking after `after` of idleness; a zero duration never parks.
    pub fn new(after: std::time::Duration) -> io::Result<Parking> {
        let after_ticks = (after.as_millis() / TICK.as_millis()) as u64;
        let epoll = if after_ticks > 0 {
            // SAFETY: plain system call; the result is checked before use.
            let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` was just created and is owned by nothing else.
            Some(Arc::new(unsafe { OwnedFd::from_raw_fd(fd) }))
        } else {
            None
        };
        Ok(Parking {
            after_ticks,
            epoll,
            lot: RefCell::new(Slab::default()),
            seq: Cell::new(0),
        })
    }

    /// Parked connections.
    pub fn count(&self) -> usize {
        self.lot.borrow().count()
    }

    /// Starts the watcher thread, pinned to `cpu`, and returns the shard's end of
    /// the socket pair it reports on (`None` when parking is off).
    pub fn start(&self, shard: usize, cpu: usize) -> io::Result<Option<glommio::net::UnixStream>> {
        let Some(epoll) = self.epoll.clone() else {
            return Ok(None);
        };
        let (ours, theirs) = StdUnixStream::pair()?;
        ours.set_nonblocking(true)?;
        // The watcher learns that the shard closed its end from its own end.
        epoll_ctl(
            &epoll,
            libc::EPOLL_CTL_ADD,
            theirs.as_raw_fd(),
            (libc::EPOLLRDHUP | libc::EPOLLHUP) as u32,
            STOP,
        )?;
        std::thread::Builder::new()
            .name(format!("ringmq-park-{shard}"))
            .spawn(move || watch(&epoll, &theirs, cpu))?;
        // SAFETY: `into_raw_fd` hands over sole ownership of a connected socket.
        Ok(Some(unsafe {
            glommio::net::UnixStream::from_raw_fd(ours.into_raw_fd())
        }))
    }

    /// Registers the socket of the connection about to be parked; `file` then
    /// files its record, with the returned sequence number.
    pub fn register(&self, fd: &OwnedFd) -> io::Result<u32> {
        let Some(epoll) = &self.epoll else {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "parking is off"));
        };
        let seq = self.seq.get().wrapping_add(1);
        let key = self.lot.borrow().next_key();
        let events = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32;
        let token = u64::from(seq) << 32 | u64::from(key);
        epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd.as_raw_fd(), events, token)?;
        self.seq.set(seq);
        Ok(seq)
    }

    /// Files the record of the connection whose socket `register` just took.
    pub fn file(&self, p: Parked) {
        let handle = p.kept.handle.clone();
        let key = self.lot.borrow_mut().insert(p);
        debug_assert_eq!(
            self.lot.borrow().get(key).map(|p| p.seq),
            Some(self.seq.get())
        );
        handle.park(key);
    }

    /// Takes the connection parked under `key` out of the lot and its socket out of
    /// the epoll set. With `seq`, only if it is the parking the token was made for.
    pub fn take(&self, key: u32, seq: Option<u32>) -> Option<Parked> {
        let mut lot = self.lot.borrow_mut();
        if seq.is_some_and(|s| lot.get(key).map(|p| p.seq) != Some(s)) {
            return None;
        }
        let p = lot.remove(key)?;
        drop(lot);
        if let Some(epoll) = &self.epoll {
            // Once the descriptor moves to a glommio stream, a registration left here
            // would outlive it.
            let _ = epoll_ctl(epoll, libc::EPOLL_CTL_DEL, p.fd.as_raw_fd(), 0, 0);
        }
        p.kept.handle.unpark();
        Some(p)
    }

    /// Closes every connection still parked: the shard is stopping. The watcher
    /// stops by itself once the shard's end of its socket pair is closed.
    pub fn close_all(&self) {
        let keys: Vec<u32> = self.lot.borrow().iter().map(|(k, _)| k).collect();
        for key in keys {
            drop(self.take(key, None));
        }
    }
}

/// The shard's side: resumes the connections whose tokens the watcher reports.
pub(crate) async fn reader(shard: Rc<Shard>, mut bell: glommio::net::UnixStream) {
    let mut buf = [0u8; 8 * 512];
    let mut have = 0;
    loop {
        match bell.read(&mut buf[have..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => have += n,
        }
        let whole = have / 8 * 8;
        for token in buf[..whole].chunks_exact(8) {
            let token = u64::from_ne_bytes(token.try_into().expect("8 bytes"));
            super::unpark(&shard, token as u32, Some((token >> 32) as u32));
        }
        buf.copy_within(whole..have, 0);
        have -= whole;
    }
}

/// The watcher thread: reports the tokens of parked sockets that became readable.
fn watch(epoll: &OwnedFd, bell: &StdUnixStream, cpu: usize) {
    pin_to(cpu);
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    let mut out: Vec<u8> = Vec::with_capacity(EVENTS * 8);
    loop {
        // SAFETY: `events` has room for `EVENTS` entries, and `epoll` is open.
        let n =
            unsafe { libc::epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), EVENTS as i32, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            tracing::error!("parked connections can no longer be watched: {e}");
            return;
        }
        out.clear();
        for ev in &events[..n as usize] {
            let token = ev.u64;
            if token == STOP {
                return;
            }
            out.extend_from_slice(&token.to_ne_bytes());
        }
        if send_all(bell, &out).is_err() {
            return;
        }
    }
}

fn send_all(sock: &StdUnixStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a live slice; MSG_NOSIGNAL turns a closed peer into
        // EPIPE instead of a signal.
        let n = unsafe {
            libc::send(
                sock.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

fn epoll_ctl(epoll: &OwnedFd, op: i32, fd: i32, events: u32, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: both descriptors are open; `ev` lives across the call.
    if unsafe { libc::epoll_ctl(epoll.as_raw_fd(), op, fd, &mut ev) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only read it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_parked_connection_is_64_bytes() {
        // The lot holds `Option<Parked>` in its pages: the niche of the descriptor
        // keeps it the size of the record.
        assert!(std::mem::size_of::<Option<super::Parked>>() <= 64);
    }
}
