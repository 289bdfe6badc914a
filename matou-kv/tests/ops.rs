//! Operations commands against the real server, with the `redis` crate and
//! raw sockets as peers: CLIENT LIST / INFO / KILL (a kill reaches
//! connections whichever worker serves them) and CONFIG SET (live effect,
//! all or nothing, protected and immutable settings refused).

mod common;

use common::{temp_dir, Server};
use redis::{cmd, Connection};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn id(c: &mut Connection) -> i64 {
    cmd("CLIENT").arg("ID").query(c).unwrap()
}

fn list(c: &mut Connection) -> String {
    cmd("CLIENT").arg("LIST").query(c).unwrap()
}

/// Whether the server closed `s` within 5 s (a read sees the end).
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            // A reply still on its way: the end comes after it.
            Ok(_) => continue,
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                )
            }
        }
    }
}

/// A raw connection that answered one PING, and its CLIENT ID.
fn raw_client(server: &Server) -> (TcpStream, i64) {
    let mut s = server.raw();
    s.write_all(b"CLIENT ID\r\n").unwrap();
    let mut b = [0u8; 64];
    let n = s.read(&mut b).unwrap();
    let text = std::str::from_utf8(&b[..n]).unwrap();
    let id = text.trim_start_matches(':').trim().parse().unwrap();
    (s, id)
}

#[test]
fn client_list_and_info_show_each_connection() {
    let dir = temp_dir("ops-list");
    let server = Server::start(&dir, &[]);
    let mut a = server.client();
    let mut b = server.client();
    let (ia, ib) = (id(&mut a), id(&mut b));
    cmd("CLIENT")
        .arg("SETNAME")
        .arg("bee")
        .query::<()>(&mut b)
        .unwrap();
    cmd("SELECT").arg(3).query::<()>(&mut b).unwrap();
    cmd("GET").arg("k").query::<Option<String>>(&mut b).unwrap();
    let l = list(&mut a);
    let lines: Vec<&str> = l.lines().collect();
    assert_eq!(lines.len(), 2, "{l}");
    let line_b = lines
        .iter()
        .find(|x| x.starts_with(&format!("id={ib} ")))
        .unwrap();
    assert!(line_b.contains(" name=bee "), "{line_b}");
    assert!(line_b.contains(" db=3 "), "{line_b}");
    assert!(line_b.contains(" cmd=get "), "{line_b}");
    assert!(line_b.contains(" addr=127.0.0.1:"), "{line_b}");
    let info: String = cmd("CLIENT").arg("INFO").query(&mut a).unwrap();
    assert!(info.starts_with(&format!("id={ia} ")), "{info}");
    assert!(info.contains(" cmd=client|info "), "{info}");
    let only: String = cmd("CLIENT")
        .arg("LIST")
        .arg("ID")
        .arg(ib)
        .query(&mut a)
        .unwrap();
    assert_eq!(only.lines().count(), 1);
    assert!(only.starts_with(&format!("id={ib} ")));
    drop(b);
    // The registry forgets a connection once its handler ends.
    let deadline = Instant::now() + Duration::from_secs(5);
    while list(&mut a).lines().count() != 1 {
        assert!(Instant::now() < deadline, "{}", list(&mut a));
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn client_kill_reaches_connections_on_every_worker() {
    let dir = temp_dir("ops-kill");
    // Two workers, each with its accept loop: the victims are spread over
    // both, and every one must be closed by a kill from one connection.
    let server = Server::start(&dir, &[]);
    let mut killer = server.client();
    let mut victims: Vec<(TcpStream, i64)> = (0..6).map(|_| raw_client(&server)).collect();
    for (_, vid) in &victims[..5] {
        let n: i64 = cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(*vid)
            .query(&mut killer)
            .unwrap();
        assert_eq!(n, 1);
    }
    for (s, vid) in &mut victims[..5] {
        assert!(closed_by_server(s), "client {vid} was not closed");
    }
    // The old form, by address; the survivor still works until then.
    let (mut last, _) = victims.pop().unwrap();
    last.write_all(b"PING\r\n").unwrap();
    let mut b = [0u8; 16];
    let n = last.read(&mut b).unwrap();
    assert_eq!(&b[..n], b"+PONG\r\n");
    let addr = last.local_addr().unwrap().to_string();
    let ok: String = cmd("CLIENT")
        .arg("KILL")
        .arg(&addr)
        .query(&mut killer)
        .unwrap();
    assert_eq!(ok, "OK");
    assert!(closed_by_server(&mut last));
    let e = cmd("CLIENT")
        .arg("KILL")
        .arg(&addr)
        .query::<String>(&mut killer)
        .unwrap_err();
    assert!(e.to_string().contains("No such client"), "{e}");
    // SKIPME yes by default: the killer survives a kill that matches it.
    let n: i64 = cmd("CLIENT")
        .arg("KILL")
        .arg("USER")
        .arg("default")
        .query(&mut killer)
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(list(&mut killer).lines().count(), 1);
    // SKIPME no: it kills itself, after its reply.
    let mut s = server.raw();
    s.write_all(b"CLIENT KILL SKIPME no LADDR ").unwrap();
    s.write_all(format!("127.0.0.1:{}\r\n", server.port).as_bytes())
        .unwrap();
    let mut b = [0u8; 16];
    let n = s.read(&mut b).unwrap();
    assert_eq!(&b[..n], b":2\r\n", "itself and the killer");
    assert!(closed_by_server(&mut s));
}

#[test]
fn client_kill_ends_a_client_that_does_not_read() {
    let dir = temp_dir("ops-kill-stuck");
    let server = Server::start(&dir, &[]);
    let mut c = server.client();
    cmd("SET")
        .arg("big")
        .arg(vec![b'x'; 1 << 20])
        .query::<()>(&mut c)
        .unwrap();
    let (mut stuck, sid) = raw_client(&server);
    // Many GETs of a big value, never read: its handler blocks writing.
    let mut pipeline = Vec::new();
    for _ in 0..64 {
        pipeline.extend_from_slice(b"GET big\r\n");
    }
    stuck.write_all(&pipeline).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let n: i64 = cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(sid)
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while list(&mut c).lines().count() != 1 {
        assert!(
            Instant::now() < deadline,
            "the stuck client is still listed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn config_get(c: &mut Connection, name: &str) -> String {
    let v: Vec<String> = cmd("CONFIG").arg("GET").arg(name).query(c).unwrap();
    assert_eq!(v.len(), 2, "{v:?}");
    v[1].clone()
}

#[test]
fn config_set_changes_live_settings_all_or_nothing() {
    let dir = temp_dir("ops-config");
    let server = Server::start(&dir, &[]);
    let mut c = server.client();
    // Protected and immutable settings are refused, and nothing of the
    // command is applied.
    let e = cmd("CONFIG")
        .arg("SET")
        .arg("timeout")
        .arg("7")
        .arg("dir")
        .arg("/tmp")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("can't set protected config"), "{e}");
    assert_eq!(config_get(&mut c, "timeout"), "0");
    let e = cmd("CONFIG")
        .arg("SET")
        .arg("port")
        .arg("1")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("can't set immutable config"), "{e}");
    let e = cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg("lots")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("'maxclients'"), "{e}");
    let e = cmd("CONFIG")
        .arg("SET")
        .arg("nosuch")
        .arg("1")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("Unknown option"), "{e}");

    // maxclients takes effect at once: 2 clients, the third is refused.
    cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg("2")
        .arg("timeout")
        .arg("1")
        .query::<()>(&mut c)
        .unwrap();
    assert_eq!(config_get(&mut c, "maxclients"), "2");
    let mut second = server.client();
    let mut third = server.raw();
    third.write_all(b"PING\r\n").unwrap();
    let mut b = [0u8; 64];
    let n = third.read(&mut b).unwrap();
    assert_eq!(&b[..n], b"-ERR max number of clients reached\r\n");
    // timeout too: an idle connection is closed after about a second.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(cmd("PING").query::<String>(&mut second).is_err());
    let mut c = server.client();

    // requirepass: new connections must AUTH, this one stays in.
    cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("s3cret")
        .arg("timeout")
        .arg("0")
        .query::<()>(&mut c)
        .unwrap();
    let mut fresh = server.raw();
    fresh.write_all(b"GET k\r\n").unwrap();
    let n = fresh.read(&mut b).unwrap();
    assert!(b[..n].starts_with(b"-NOAUTH"), "{:?}", &b[..n]);
    fresh.write_all(b"AUTH s3cret\r\n").unwrap();
    let n = fresh.read(&mut b).unwrap();
    assert_eq!(&b[..n], b"+OK\r\n");
    assert_eq!(cmd("PING").query::<String>(&mut c).unwrap(), "PONG");
}

#[test]
fn monitor_sees_requests_from_other_connections() {
    let dir = temp_dir("ops-monitor");
    let server = Server::start(&dir, &[]);
    let mut m = server.raw();
    m.write_all(b"MONITOR\r\n").unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    while !got.ends_with(b"+OK\r\n") {
        let n = m.read(&mut b).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&b[..n]);
    }
    let mut c = server.client();
    cmd("SELECT").arg(2).query::<()>(&mut c).unwrap();
    cmd("SET")
        .arg("k")
        .arg("a \"b\"\n")
        .query::<()>(&mut c)
        .unwrap();
    cmd("AUTH").arg("nopass").query::<()>(&mut c).unwrap_err();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !text.contains("(redacted)") {
        assert!(Instant::now() < deadline, "{text}");
        let n = m.read(&mut b).unwrap();
        assert!(n > 0, "monitor closed: {text}");
        text.push_str(std::str::from_utf8(&b[..n]).unwrap());
    }
    // The arguments as sent (the crate sends names in capitals):
    // `+<secs>.<micros> [<db> <addr>] "SET" "k" "a \"b\"\n"`.
    let set = text
        .lines()
        .find(|l| l.contains("\"SET\""))
        .unwrap_or_else(|| panic!("no SET line in {text:?}"));
    assert!(set.starts_with('+'), "{set}");
    assert!(set.contains(" [2 127.0.0.1:"), "{set}");
    assert!(set.ends_with(r#"] "SET" "k" "a \"b\"\n""#), "{set}");
    assert!(text.contains(r#""AUTH" "(redacted)""#), "{text}");
    // Only QUIT is served in MONITOR mode.
    m.write_all(b"GET k\r\nQUIT\r\n").unwrap();
    assert!(closed_by_server(&mut m));
}

#[test]
fn a_monitor_that_does_not_read_is_disconnected_not_waited_for() {
    let dir = temp_dir("ops-monitor-slow");
    let server = Server::start(&dir, &["--fsync", "no"]);
    let mut m = server.raw();
    m.write_all(b"MONITOR\r\n").unwrap();
    let mut b = [0u8; 5];
    m.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"+OK\r\n");
    // The monitor never reads again; 64 MiB of SETs go by. The writer is
    // not slowed down to the monitor's pace: it finishes, and the monitor
    // is dropped once its queue is over its bound.
    let mut c = server.client();
    let value = vec![b'v'; 1 << 20];
    let started = Instant::now();
    for i in 0..64 {
        cmd("SET").arg(i).arg(&value).query::<()>(&mut c).unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(5);
    while list(&mut c).lines().count() != 1 {
        assert!(
            Instant::now() < deadline,
            "the slow monitor is still listed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn config_rewrite_keeps_the_file_and_round_trips() {
    let dir = temp_dir("ops-rewrite");
    let conf = dir.join("matou.conf");
    std::fs::write(&conf, "# my comment\ntimeout 5\n\n# last line\n").unwrap();
    let conf_s = conf.display().to_string();
    let mut server = Server::start(&dir.join("data"), &["--config", &conf_s]);
    let mut c = server.client();
    cmd("CONFIG")
        .arg("SET")
        .arg("timeout")
        .arg("42")
        .arg("maxclients")
        .arg("77")
        .query::<()>(&mut c)
        .unwrap();
    cmd("CONFIG").arg("REWRITE").query::<()>(&mut c).unwrap();
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(
        text.starts_with("# my comment\ntimeout \"42\"\n\n# last line\n"),
        "{text}"
    );
    assert!(text.contains("maxclients \"77\"\n"), "{text}");
    // A restart reads it back.
    drop(c);
    server.terminate();
    server.spawn();
    let mut c = server.client();
    assert_eq!(config_get(&mut c, "timeout"), "42");
    assert_eq!(config_get(&mut c, "maxclients"), "77");

    // Without a config file REWRITE says so.
    let other = Server::start(&temp_dir("ops-rewrite-none"), &[]);
    let e = cmd("CONFIG")
        .arg("REWRITE")
        .query::<()>(&mut other.client())
        .unwrap_err();
    assert!(e.to_string().contains("without a config file"), "{e}");
}

#[test]
fn client_reply_off_on_and_skip() {
    let dir = temp_dir("ops-reply");
    let server = Server::start(&dir, &[]);
    let mut s = server.raw();
    // OFF silences itself and what follows; ON answers again, itself
    // included. SKIP silences itself and the next reply only.
    s.write_all(
        b"CLIENT REPLY OFF\r\nPING a\r\nSET k v\r\nCLIENT REPLY ON\r\nPING b\r\n\
          CLIENT REPLY SKIP\r\nPING c\r\nPING d\r\n",
    )
    .unwrap();
    let want = b"+OK\r\n$1\r\nb\r\n$1\r\nd\r\n";
    let mut got = vec![0u8; want.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    // The silenced SET did run.
    s.write_all(b"GET k\r\n").unwrap();
    let mut b = [0u8; 7];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"$1\r\nv\r\n");
}
