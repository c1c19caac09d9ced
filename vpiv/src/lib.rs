//! A virtual YubiKey-style PIV card for trustd's tests, presented through pcscd's vpcd
//! reader (vsmartcard): pcscd loads the vpcd driver, which listens on a TCP port, and
//! whatever connects there and answers APDUs is the card in that reader.
//!
//! The vpcd protocol: every message is a 2-byte big-endian length, then the bytes. One-byte
//! messages are control: 0 power off, 1 power on, 2 reset, 4 ATR request (answered with the
//! ATR). Everything else is a command APDU, answered with the response APDU.
//!
//! It differs from a real YubiKey where tests need it to: its attestation root is a test CA
//! (configure it as the trust anchor), "touch" is pressed through [`VirtualCard::touch`], and
//! removal is [`VirtualCard::remove`] (the card keeps its keys, as a real one would).

pub mod attestation;
pub mod piv;
mod tlv;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub use piv::{PivCard, DEFAULT_MGM_KEY, DEFAULT_PIN, DEFAULT_PUK};

/// The port pcscd's vpcd driver listens on for its first reader (Debian's reader.conf.d).
pub const VPCD_PORT: u16 = 0x8C7B;

struct Shared {
    card: Mutex<PivCard>,
    inserted: AtomicBool,
    stopped: AtomicBool,
    /// The live connection to vpcd, so removal can cut it.
    stream: Mutex<Option<TcpStream>>,
    touched: Mutex<bool>,
    touch_signal: Condvar,
}

/// A card in a vpcd reader, served by a background thread until dropped.
pub struct VirtualCard {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl VirtualCard {
    /// Inserts a new card with `serial` into the vpcd reader at 127.0.0.1:`port`.
    pub fn insert_new(serial: u32, port: u16) -> VirtualCard {
        let shared = Arc::new(Shared {
            card: Mutex::new(PivCard::new(serial)),
            inserted: AtomicBool::new(true),
            stopped: AtomicBool::new(false),
            stream: Mutex::new(None),
            touched: Mutex::new(false),
            touch_signal: Condvar::new(),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("virtual-piv".into())
                .spawn(move || serve(&shared, port))
                .expect("spawn the virtual card")
        };
        VirtualCard {
            shared,
            thread: Some(thread),
        }
    }

    /// The attestation root CA (PEM) that this card's f9 certificate chains to.
    pub fn attestation_root_pem(&self) -> String {
        self.card().ca.root_pem()
    }

    pub fn serial(&self) -> u32 {
        self.card().serial
    }

    /// How long a touch-policy key waits for a touch before refusing (a YubiKey waits 15 s).
    pub fn set_touch_timeout(&self, timeout: Duration) {
        self.card().touch_timeout = timeout;
    }

    /// Presses the card's button; it counts only while an operation waits for it.
    pub fn touch(&self) {
        *self.shared.touched.lock().expect("touch") = true;
        self.shared.touch_signal.notify_all();
    }

    /// Pulls the card out of the reader; it keeps its keys and objects.
    pub fn remove(&self) {
        self.shared.inserted.store(false, Ordering::SeqCst);
        if let Some(stream) = self.shared.stream.lock().expect("stream").take() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Puts the card back.
    pub fn reinsert(&self) {
        self.shared.inserted.store(true, Ordering::SeqCst);
    }

    fn card(&self) -> std::sync::MutexGuard<'_, PivCard> {
        self.shared.card.lock().expect("card state")
    }
}

impl Drop for VirtualCard {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.remove();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Touch<'a>(&'a Shared);

impl piv::TouchSensor for Touch<'_> {
    fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut touched = self.0.touched.lock().expect("touch");
        // Only a touch while the card waits (its light blinking) counts.
        *touched = false;
        while !*touched {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            touched = self
                .0
                .touch_signal
                .wait_timeout(touched, deadline - now)
                .expect("touch")
                .0;
        }
        *touched = false;
        true
    }
}

/// Connects to vpcd while inserted and answers it; reconnects after removal or a dropped link.
fn serve(shared: &Shared, port: u16) {
    while !shared.stopped.load(Ordering::SeqCst) {
        if !shared.inserted.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        // vpcd writes the length and the body separately: without NODELAY every exchange
        // waits for a delayed ACK (~40 ms).
        let _ = stream.set_nodelay(true);
        *shared.stream.lock().expect("stream") = stream.try_clone().ok();
        let _ = exchange(shared, stream);
        shared.card.lock().expect("card state").reset();
    }
}

/// vpcd writes a message's length and its body in two writes, with Nagle's algorithm on: the
/// body waits until the length is acknowledged. Acknowledge at once (TCP_QUICKACK is not
/// sticky, so before every read), or each exchange stalls for a delayed ACK (~40 ms).
// unsafe_code allowed here: setsockopt(TCP_QUICKACK) (FFI).
#[allow(unsafe_code)]
fn quick_ack(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a c_int option of the right size.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn exchange(shared: &Shared, mut stream: TcpStream) -> std::io::Result<()> {
    loop {
        let mut len = [0u8; 2];
        quick_ack(&stream);
        stream.read_exact(&mut len)?;
        let mut message = vec![0u8; u16::from_be_bytes(len) as usize];
        quick_ack(&stream);
        stream.read_exact(&mut message)?;
        let reply = {
            let mut card = shared.card.lock().expect("card state");
            match message.as_slice() {
                [0] | [1] | [2] => {
                    card.reset();
                    None
                }
                [4] => Some(card.atr()),
                apdu => Some(card.process(apdu, &Touch(shared))),
            }
        };
        if let Some(reply) = reply {
            let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&reply);
            stream.write_all(&framed)?;
        }
    }
}
