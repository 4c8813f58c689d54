//! The test mirror's HTTP server: HTTP/1.1 on 127.0.0.1, one thread per connection,
//! with faults injected per path.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server does for one path.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status (no body) for the next `n` requests, then serve normally.
    Status(u16, u32),
    /// Announce the full length but close after this many body bytes, `n` times.
    Truncate(usize, u32),
    /// Redirect (302) to another path on this server.
    Redirect(String),
    /// Send the body slowly: this many bytes per 100 ms.
    Slow(usize),
    /// Serve normally `n` times, then serve this other file (relative to the root).
    SwapAfter(u32, String),
    /// Read the request, then never answer (until the client hangs up).
    Silent,
    /// Send the headers and this many body bytes, then nothing (until the client hangs up).
    StallAfter(usize),
    /// Send the headers, then one body byte every this many milliseconds.
    Drip(u64),
}

#[derive(Default)]
struct State {
    faults: HashMap<String, Fault>,
    log: Vec<String>,
}

/// A small HTTP/1.1 server (one thread per connection, Connection: close).
pub struct HttpServer {
    pub port: u16,
    root: PathBuf,
    state: Arc<Mutex<State>>,
}

impl HttpServer {
    pub fn start(root: &Path) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let (root2, state2) = (root.to_path_buf(), state.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (root, state) = (root2.clone(), state2.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &root, &state);
                });
            }
        });
        HttpServer {
            port,
            root: root.to_path_buf(),
            state,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn fault(&self, path: &str, f: Fault) {
        self.state
            .lock()
            .unwrap()
            .faults
            .insert(path.to_string(), f);
    }

    pub fn clear_faults(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    /// Paths requested so far.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn count(&self, suffix: &str) -> usize {
        self.log().iter().filter(|p| p.ends_with(suffix)).count()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }
}

fn serve(conn: TcpStream, root: &Path, state: &Mutex<State>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/");
    // Absolute-form targets arrive when the server is used as an HTTP proxy.
    let (path, via_proxy) = match target.strip_prefix("http://") {
        Some(rest) => (
            format!("/{}", rest.split_once('/').map_or("", |(_, p)| p)),
            true,
        ),
        None => (target.to_string(), false),
    };
    let path = if via_proxy {
        format!("proxy:{path}")
    } else {
        path
    };
    let mut w = conn;
    let fault = {
        let mut st = state.lock().unwrap();
        st.log.push(path.clone());
        let f = st.faults.get(&path).cloned();
        // Count down faults that apply a limited number of times.
        match &f {
            Some(Fault::Status(code, n)) if *n > 0 => {
                st.faults.insert(path.clone(), Fault::Status(*code, n - 1));
                f
            }
            Some(Fault::Truncate(at, n)) if *n > 0 => {
                st.faults.insert(path.clone(), Fault::Truncate(*at, n - 1));
                f
            }
            Some(Fault::SwapAfter(n, alt)) if *n > 0 => {
                st.faults
                    .insert(path.clone(), Fault::SwapAfter(n - 1, alt.clone()));
                None
            }
            Some(Fault::Status(..)) | Some(Fault::Truncate(..)) => None,
            _ => f,
        }
    };
    if let Some(Fault::Silent) = fault {
        return hold(w);
    }
    if let Some(Fault::Status(code, _)) = fault {
        return write!(
            w,
            "HTTP/1.1 {code} Injected\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }
    if let Some(Fault::Redirect(to)) = &fault {
        return write!(w, "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
    let rel = path.trim_start_matches("proxy:").trim_start_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return write!(
            w,
            "HTTP/1.1 400 Bad\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }
    let file = match &fault {
        Some(Fault::SwapAfter(_, alt)) => root.join(alt),
        _ => root.join(rel),
    };
    let Ok(body) = std::fs::read(&file).and_then(|b| {
        if file.is_file() {
            Ok(b)
        } else {
            Err(std::io::ErrorKind::NotFound.into())
        }
    }) else {
        return write!(
            w,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    };
    write!(
        w,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    match fault {
        Some(Fault::Truncate(at, _)) => w.write_all(&body[..at.min(body.len())]),
        Some(Fault::StallAfter(at)) => {
            w.write_all(&body[..at.min(body.len())])?;
            hold(w)
        }
        Some(Fault::Drip(ms)) => {
            for b in &body {
                w.write_all(std::slice::from_ref(b))?;
                std::thread::sleep(Duration::from_millis(ms));
            }
            Ok(())
        }
        Some(Fault::Slow(rate)) => {
            for chunk in body.chunks(rate.max(1)) {
                w.write_all(chunk)?;
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(())
        }
        _ => w.write_all(&body),
    }
}

/// Keep a connection open, sending nothing, until the client closes it.
fn hold(mut conn: TcpStream) -> std::io::Result<()> {
    conn.set_read_timeout(None)?;
    let mut buf = [0u8; 512];
    while conn.read(&mut buf)? > 0 {}
    Ok(())
}

/// A port on 127.0.0.1 where a TCP connect hangs: the listener's accept queue (backlog 0)
/// is held full by one connection nobody accepts, so the kernel drops further SYNs.
pub struct Unaccepting {
    pub port: u16,
    _listener: TcpListener,
    _filler: TcpStream,
}

impl Unaccepting {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        // listen() again on a listening socket only changes its backlog.
        let backlog = nix::sys::socket::Backlog::new(0).expect("backlog 0");
        nix::sys::socket::listen(&listener, backlog).expect("listen");
        let port = listener.local_addr().unwrap().port();
        let filler = TcpStream::connect(("127.0.0.1", port)).expect("first connect");
        Unaccepting {
            port,
            _listener: listener,
            _filler: filler,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
