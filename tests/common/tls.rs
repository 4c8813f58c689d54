//! A CA made for one test (openssl), and a server certificate it signed for 127.0.0.1:
//! what the https tests serve with, and what rlxc is told to trust by SSL_CERT_FILE
//! (the system store's override, read by rustls-native-certs).

use std::path::PathBuf;

pub struct TestCa {
    /// The CA's certificate (PEM): point SSL_CERT_FILE at it.
    pub ca: PathBuf,
    /// The server's certificate and key (PEM), for IP 127.0.0.1.
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("sh")
            .arg("-ec")
            .arg(
                "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=rlxc test CA'
                 openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1
                 printf 'subjectAltName=IP:127.0.0.1\\n' > ext
                 openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext",
            )
            .current_dir(dir.path())
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        TestCa {
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join("srv.pem"),
            key: dir.path().join("srv.key"),
            _dir: dir,
        }
    }
}
