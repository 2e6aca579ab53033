//! TCP plumbing for the replica tests: a balancer in front of several receivers (what a
//! Kubernetes Service does for MLflow's deliveries) and a relay in front of the API server that
//! can be cut (an API server out of reach).
#![allow(dead_code)]

use std::io::copy;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Copies both ways between `a` and `b` until either side closes.
fn pipe(a: TcpStream, b: TcpStream, open: &Arc<Mutex<Vec<TcpStream>>>) {
    if let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) {
        open.lock().unwrap().extend([a2, b2]);
    }
    let (mut a_read, mut b_write) = (a.try_clone().unwrap(), b.try_clone().unwrap());
    let back = thread::spawn(move || {
        let _ = copy(&mut a_read, &mut b_write);
        let _ = b_write.shutdown(Shutdown::Write);
    });
    let (mut b_read, mut a_write) = (b, a);
    let _ = copy(&mut b_read, &mut a_write);
    let _ = a_write.shutdown(Shutdown::Write);
    let _ = back.join();
}

/// Spreads connections over backends in turn, skipping one that refuses them, as a Service
/// does over ready pods.
pub struct Balancer {
    pub addr: SocketAddr,
    /// Connections handed to each backend.
    pub served: Arc<Vec<AtomicUsize>>,
}

impl Balancer {
    pub fn start(backends: Vec<SocketAddr>) -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let served: Arc<Vec<AtomicUsize>> =
            Arc::new(backends.iter().map(|_| AtomicUsize::new(0)).collect());
        let counts = served.clone();
        let open = Arc::new(Mutex::new(Vec::new()));
        thread::spawn(move || {
            let mut next = 0;
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let mut upstream = None;
                for i in 0..backends.len() {
                    let k = (next + i) % backends.len();
                    if let Ok(s) =
                        TcpStream::connect_timeout(&backends[k], Duration::from_millis(500))
                    {
                        counts[k].fetch_add(1, Ordering::Relaxed);
                        upstream = Some(s);
                        next = k + 1;
                        break;
                    }
                }
                let Some(upstream) = upstream else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let open = open.clone();
                thread::spawn(move || pipe(client, upstream, &open));
            }
        });
        Balancer { addr, served }
    }

    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }
}

/// A relay to one address that can be cut (every connection closed, new ones refused) and
/// restored.
pub struct Relay {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    pub fn start(to: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        {
            let (cut, open) = (cut.clone(), open.clone());
            thread::spawn(move || {
                for client in listener.incoming() {
                    let Ok(client) = client else { continue };
                    if cut.load(Ordering::Relaxed) {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    }
                    let Ok(upstream) = TcpStream::connect(to) else {
                        continue;
                    };
                    let open = open.clone();
                    thread::spawn(move || pipe(client, upstream, &open));
                }
            });
        }
        Relay { addr, cut, open }
    }

    /// Closes every connection through the relay and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::Relaxed);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::Relaxed);
    }
}
