//! Connections: pipes, listeners and clients, authentication, hostile peers.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{LIMIT, METHODS, builder, join, wait};
use multiproc::connection::{
    self, Address, Client, Connection, Listener, Receiver, Sender, Waitable, pipe_oneway,
    wait as wait_any,
};
use multiproc::{Error, Process, RawValue, pipe};

fn seed(conn: Connection<(i32, Option<()>, String)>) {
    conn.send(&(42, None, "hello".to_owned())).unwrap();
}

#[test]
fn the_seed_scenario_sends_a_tuple_through_a_pipe_with_every_start_method() {
    for method in METHODS {
        let (parent, child) = pipe().unwrap();
        let p = common::builder(method).spawn(seed, child).unwrap();
        let got = parent.recv_timeout(LIMIT).unwrap();
        assert_eq!(format!("{got:?}"), r#"(42, None, "hello")"#);
        join(p).unwrap();
    }
}

fn echo_all(conn: Connection<String>) -> usize {
    let mut n = 0;
    while let Ok(text) = conn.recv_timeout(LIMIT) {
        if text == "bye" {
            break;
        }
        conn.send(&text.to_uppercase()).unwrap();
        let raw = conn.recv_bytes().unwrap();
        conn.send_bytes(&raw).unwrap();
        n += 1;
    }
    n
}

#[test]
fn every_method_works_across_processes() {
    let (a, b) = pipe::<String>().unwrap();
    let p = Process::spawn(echo_all, b).unwrap();
    for i in 0..50 {
        a.send(&format!("msg {i}")).unwrap();
        assert!(a.poll(LIMIT).unwrap());
        assert_eq!(a.recv().unwrap(), format!("MSG {i}"));
        a.send_bytes(&[i as u8; 3]).unwrap();
        let mut buf = [0u8; 8];
        let n = a.recv_bytes_into(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[i as u8; 3]);
    }
    assert!(matches!(a.try_recv(), Err(Error::Empty)));
    assert!(!a.poll(Duration::from_millis(10)).unwrap());
    a.send(&"bye".to_owned()).unwrap();
    assert_eq!(join(p).unwrap(), 50);
}

#[test]
fn recv_bytes_into_a_small_buffer_hands_the_message_back() {
    let (a, b) = pipe::<()>().unwrap();
    a.send_bytes(b"0123456789").unwrap();
    let mut small = [0u8; 4];
    match b.recv_bytes_into(&mut small) {
        Err(Error::BufferTooShort { message }) => assert_eq!(message, b"0123456789"),
        other => panic!("{other:?}"),
    }
}

fn send_three_then_hang(conn: Connection<u32>) {
    for i in 0..3 {
        conn.send(&i).unwrap();
    }
    std::thread::sleep(Duration::from_secs(300));
}

#[test]
fn a_killed_peer_is_a_disconnection_after_what_it_sent() {
    for method in METHODS {
        let (a, b) = pipe::<u32>().unwrap();
        let p = common::builder(method).spawn(send_three_then_hang, b).unwrap();
        assert_eq!(a.recv_timeout(LIMIT).unwrap(), 0);
        common::eventually("all three sent", || a.poll(Duration::ZERO).unwrap());
        p.kill().unwrap();
        wait(&p);
        assert_eq!(a.recv_timeout(LIMIT).unwrap(), 1);
        assert_eq!(a.recv_timeout(LIMIT).unwrap(), 2);
        assert!(matches!(a.recv_timeout(LIMIT), Err(Error::Disconnected)), "{method:?}");
        // Sending to a gone peer fails, and never kills us with SIGPIPE.
        let start = Instant::now();
        let failed = (0..10_000).any(|i| a.send(&i).is_err());
        assert!(failed && start.elapsed() < LIMIT, "{method:?}: send to a dead peer must fail");
    }
}

#[test]
fn dropping_or_closing_an_end_disconnects_in_either_direction() {
    let (a, b) = pipe::<u8>().unwrap();
    a.send(&9).unwrap();
    drop(a);
    assert_eq!(b.recv_timeout(LIMIT).unwrap(), 9);
    assert!(matches!(b.recv_timeout(LIMIT), Err(Error::Disconnected)));
    let (a, b) = pipe::<u8>().unwrap();
    b.close();
    assert!(matches!(a.recv_timeout(LIMIT), Err(Error::Disconnected)));
    assert!(matches!(a.send(&1), Err(Error::Disconnected)));
}

#[test]
fn a_one_way_pipe_is_a_receiver_and_a_sender() {
    // `reader.send(..)` and `writer.recv()` do not compile (see the
    // `pipe_oneway` doc test); what remains is the right direction.
    let (reader, writer) = pipe_oneway::<u8>().unwrap();
    writer.send(&5).unwrap();
    assert_eq!(reader.recv_timeout(LIMIT).unwrap(), 5);
    drop(writer);
    assert!(matches!(reader.recv_timeout(LIMIT), Err(Error::Disconnected)));
}

fn sum_until_disconnected(r: Receiver<u64>) -> u64 {
    r.iter().map(|m| m.expect("a message")).sum()
}

fn send_one_to_ten(w: Sender<u64>) {
    for i in 1..=10 {
        w.send(&i).unwrap();
    }
}

#[test]
fn one_way_halves_travel_to_children_and_the_reader_iterates_to_the_end() {
    for method in METHODS {
        let (r, w) = pipe_oneway::<u64>().unwrap();
        // The writer first: a forked reader would otherwise inherit this
        // process's copy of the writing end, and never see the end.
        let writer = builder(method).spawn(send_one_to_ten, w).unwrap();
        let reader = builder(method).spawn(sum_until_disconnected, r).unwrap();
        join(writer).unwrap();
        assert_eq!(join(reader).unwrap(), 55, "{method:?}");
    }
}

fn send_three_then_exit(conn: Connection<String>) {
    for word in ["a", "b", "c"] {
        conn.send(&word.to_owned()).unwrap();
    }
}

#[test]
fn a_connection_iterates_until_its_peer_is_gone() {
    let (parent, child) = pipe::<String>().unwrap();
    let p = Process::spawn(send_three_then_exit, child).unwrap();
    join(p).unwrap();
    let got: Vec<String> = (&parent).into_iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(got, ["a", "b", "c"]);
    // Fused: the end stays the end.
    assert!(parent.iter().next().is_none());
}

#[test]
fn try_iter_takes_what_is_there_and_stops() {
    let (a, b) = pipe::<u8>().unwrap();
    assert_eq!(b.try_iter().count(), 0);
    a.send(&1).unwrap();
    a.send(&2).unwrap();
    let got: Vec<u8> = b.try_iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(got, [1, 2]);
    // The peer is still there: a later message is received by a later call.
    a.send(&3).unwrap();
    assert_eq!(b.recv_timeout(LIMIT).unwrap(), 3);
}

#[test]
fn a_message_of_the_wrong_type_is_yielded_as_an_error_and_ends_the_iteration() {
    let (a, b) = connection::pipe_with_ring::<u8>(1 << 16).unwrap();
    a.send_bytes(&[1, 2, 3]).unwrap(); // not one u8
    a.send(&4).unwrap();
    let mut it = b.iter();
    assert!(matches!(it.next(), Some(Err(_))), "the bad message is reported");
    assert!(it.next().is_none());
    // The connection itself is still usable.
    assert_eq!(b.recv_timeout(LIMIT).unwrap(), 4);
}

fn reply_later(args: (Connection<u8>, u64)) {
    let (conn, ms) = args;
    std::thread::sleep(Duration::from_millis(ms));
    conn.send(&1).unwrap();
    std::thread::sleep(Duration::from_millis(200));
}

fn sleep_then_exit(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn wait_returns_the_ready_connections_and_processes() {
    let (a, b) = pipe::<u8>().unwrap();
    let (c, d) = pipe::<u8>().unwrap();
    let slow = Process::spawn(reply_later, (b, 2_000)).unwrap();
    let fast = Process::spawn(reply_later, (d, 50)).unwrap();
    let quitter = Process::spawn(sleep_then_exit, 100).unwrap();
    let start = Instant::now();
    assert!(
        wait_any(&[&a as &dyn Waitable, &c], Some(Duration::from_millis(10))).unwrap().is_empty()
    );
    assert!(start.elapsed() >= Duration::from_millis(10));
    let ready = wait_any(&[&a as &dyn Waitable, &c], Some(LIMIT)).unwrap();
    assert_eq!(ready, [1]);
    assert_eq!(c.recv().unwrap(), 1);
    let ready = wait_any(&[&a as &dyn Waitable, &quitter], Some(LIMIT)).unwrap();
    assert_eq!(ready, [1], "the quitting process is ready first");
    join(quitter).unwrap();
    join(fast).unwrap();
    slow.kill().unwrap();
    wait(&slow);
}

fn use_received_connection(carrier: Connection<Connection<String>>) -> String {
    let inner = carrier.recv_timeout(LIMIT).unwrap();
    inner.send(&"through a sent connection".to_owned()).unwrap();
    inner.recv_timeout(LIMIT).unwrap()
}

#[test]
fn a_connection_sent_over_a_connection_works_in_the_receiver() {
    let (carrier, carrier_child) = pipe::<Connection<String>>().unwrap();
    let p = Process::spawn(use_received_connection, carrier_child).unwrap();
    let (mine, theirs) = pipe::<String>().unwrap();
    carrier.send(&theirs).unwrap();
    drop(theirs);
    assert_eq!(mine.recv_timeout(LIMIT).unwrap(), "through a sent connection");
    mine.send(&"and back".to_owned()).unwrap();
    assert_eq!(join(p).unwrap(), "and back");
}

fn addresses(tag: &str) -> Vec<Address> {
    let path = std::env::temp_dir().join(format!("mp-{tag}-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    vec![
        Address::Unix(path),
        Address::Abstract(format!("mp-{tag}-{}", std::process::id())),
        Address::Tcp("127.0.0.1:0".parse().unwrap()),
    ]
}

fn client_round_trip(args: (Address, Vec<u8>)) -> Result<String, String> {
    let (address, key) = args;
    let conn: Connection<String> =
        Client::connect(&address, Some(&key)).map_err(|e| e.to_string())?;
    conn.send(&"hello".to_owned()).map_err(|e| e.to_string())?;
    conn.recv_timeout(LIMIT).map_err(|e| e.to_string())
}

#[test]
fn authkeys_are_checked_on_both_sides_for_unix_abstract_and_tcp() {
    for address in addresses("auth") {
        let listener = Listener::bind(address, Some(b"right key")).unwrap();
        let address = listener.address().clone();
        // A wrong key: refused on both sides; the listener keeps serving.
        let wrong =
            Process::spawn(client_round_trip, (address.clone(), b"wrong key".to_vec())).unwrap();
        assert!(matches!(listener.accept::<String, String>(), Err(Error::AuthenticationFailed)));
        assert_eq!(join(wrong).unwrap(), Err("authentication failed".to_owned()));
        // The right key.
        let right =
            Process::spawn(client_round_trip, (address.clone(), b"right key".to_vec())).unwrap();
        let conn: Connection<String> = listener.accept().unwrap();
        assert_eq!(conn.recv_timeout(LIMIT).unwrap(), "hello");
        conn.send(&"welcome".to_owned()).unwrap();
        assert_eq!(join(right).unwrap(), Ok("welcome".to_owned()), "{address:?}");
    }
}

fn connect_unix(address: &Address) -> UnixStream {
    match address {
        Address::Unix(path) => UnixStream::connect(path).unwrap(),
        _ => unreachable!(),
    }
}

#[test]
fn hostile_peers_get_errors_and_the_listener_keeps_serving() {
    let address = addresses("hostile").remove(0);
    let listener = Listener::bind(address, Some(b"k"))
        .unwrap()
        .handshake_timeout(Duration::from_millis(200))
        .max_frame(1024);
    let address = listener.address().clone();

    // Garbage before the handshake.
    let mut garbage = connect_unix(&address);
    garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert!(matches!(listener.accept::<u8, u8>(), Err(Error::Protocol { .. })));

    // A peer that connects and says nothing.
    let _silent = connect_unix(&address);
    let start = Instant::now();
    assert!(matches!(listener.accept::<u8, u8>(), Err(Error::Timeout)));
    assert!(start.elapsed() >= Duration::from_millis(200));

    // An oversized length prefix, then a truncated frame (on a listener
    // without a key, so that a raw socket can speak frames directly).
    let plain_address = addresses("hostile-plain").remove(0);
    let plain = Listener::bind(plain_address, None).unwrap().max_frame(1024);
    let plain_address = plain.address().clone();
    for (claimed, body, too_large) in [(u64::MAX, &b""[..], true), (100, &b"abc"[..], false)] {
        let mut raw = connect_unix(&plain_address);
        // The keyless greeting, then the frame.
        let mut hello = b"mpF1".to_vec();
        hello.extend(0u32.to_le_bytes());
        hello.extend(6u64.to_le_bytes());
        hello.extend(b"#OPEN#");
        raw.write_all(&hello).unwrap();
        let conn: Connection<u8> = plain.accept().unwrap();
        let mut frame = b"mpF1".to_vec();
        frame.extend(0u32.to_le_bytes());
        frame.extend(claimed.to_le_bytes());
        frame.extend(body);
        raw.write_all(&frame).unwrap();
        drop(raw);
        let err = conn.recv_timeout(LIMIT).unwrap_err();
        if too_large {
            assert!(matches!(err, Error::FrameTooLarge { .. }), "{err:?}");
        } else {
            assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
        }
    }

    // And a well-behaved client still gets in.
    let key = b"k".to_vec();
    let good = std::thread::spawn(move || client_round_trip((address, key)));
    let conn: Connection<String> = listener.accept().unwrap();
    assert_eq!(conn.recv_timeout(LIMIT).unwrap(), "hello");
    conn.send(&"ok".to_owned()).unwrap();
    assert_eq!(good.join().unwrap(), Ok("ok".to_owned()));
}

#[test]
fn a_thousand_connections_leave_no_descriptor_behind() {
    let address = addresses("many").remove(1);
    let listener = Listener::bind_unauthenticated(address).unwrap();
    let address = listener.address().clone();
    drop(pipe::<u8>().unwrap());
    let before = common::open_fds();
    for i in 0..1_000u32 {
        // The client's connect waits for the listener's greeting.
        let client = {
            let address = address.clone();
            std::thread::spawn(move || Client::connect::<u32, u32>(&address, None))
        };
        let server: Connection<u32> = listener.accept().unwrap();
        let client = client.join().unwrap().unwrap();
        client.send(&i).unwrap();
        assert_eq!(server.recv().unwrap(), i);
        let (a, b) = pipe::<u32>().unwrap();
        a.send(&i).unwrap();
        assert_eq!(b.recv().unwrap(), i);
    }
    common::eventually("no descriptor left", || common::open_fds() <= before);
}

fn recv_two(conn: Connection<String>) -> Vec<String> {
    vec![conn.recv_timeout(LIMIT).unwrap(), conn.recv_timeout(LIMIT).unwrap()]
}

#[test]
fn a_socket_connection_handed_on_after_reading_ahead_loses_nothing() {
    let listener = Listener::bind_unauthenticated(Address::Abstract(format!(
        "mp-ahead-{}",
        std::process::id()
    )))
    .unwrap();
    let address = listener.address().clone();
    let sender = std::thread::spawn(move || {
        let conn: Connection<String> = Client::connect(&address, None).unwrap();
        for word in ["one", "two", "three"] {
            conn.send(&word.to_owned()).unwrap();
        }
        conn
    });
    let conn: Connection<String> = listener.accept().unwrap();
    let _client = sender.join().unwrap(); // all three frames are in the socket
    assert_eq!(conn.recv_timeout(LIMIT).unwrap(), "one"); // reads the others ahead
    let child = Process::spawn(recv_two, conn).unwrap();
    assert_eq!(join(child).unwrap(), ["two", "three"]);
}

#[test]
fn poll_and_wait_see_messages_already_read_ahead() {
    let listener = Listener::bind_unauthenticated(Address::Abstract(format!(
        "mp-poll-{}",
        std::process::id()
    )))
    .unwrap();
    let address = listener.address().clone();
    let sender = std::thread::spawn(move || {
        let conn: Connection<u8> = Client::connect(&address, None).unwrap();
        conn.send(&1).unwrap();
        conn.send(&2).unwrap();
        conn
    });
    let conn: Connection<u8> = listener.accept().unwrap();
    let _client = sender.join().unwrap(); // both frames are in the socket
    assert_eq!(conn.recv_timeout(LIMIT).unwrap(), 1); // reads the second ahead
    assert!(conn.poll(Duration::ZERO).unwrap());
    assert_eq!(wait_any(&[&conn as &dyn Waitable], Some(Duration::ZERO)).unwrap(), [0]);
    assert_eq!(conn.try_recv().unwrap(), 2);
    assert!(!conn.poll(Duration::ZERO).unwrap());
}

/// Receives `count` numbered messages and counts those whose descriptor
/// belongs to another message.
fn mismatches(rx: &Connection<(u32, multiproc::FdHandle)>, count: usize) -> usize {
    (0..count)
        .filter(|_| {
            let (index, fd) = rx.recv_timeout(LIMIT).unwrap();
            common::number_of(fd) != index
        })
        .count()
}

/// Two threads sending `per_thread` numbered messages each on `tx`.
fn send_numbered_from_two_threads(
    tx: &Connection<(u32, multiproc::FdHandle)>,
    per_thread: u32,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..2)
        .map(|t| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    let index = t * per_thread + i;
                    tx.send(&(index, common::numbered_fd(index))).unwrap();
                }
            })
        })
        .collect()
}

#[test]
fn descriptors_stay_with_their_message_when_threads_send_at_once() {
    let (tx, rx) = pipe::<(u32, multiproc::FdHandle)>().unwrap();
    const PER_THREAD: u32 = 2000;
    let senders = send_numbered_from_two_threads(&tx, PER_THREAD);
    assert_eq!(mismatches(&rx, 2 * PER_THREAD as usize), 0);
    for sender in senders {
        sender.join().unwrap();
    }
}

fn send_descriptors_until_blocked(args: (Connection<(u32, multiproc::FdHandle)>, RawValue<u32>)) {
    let (tx, sent) = args;
    // Nobody reads yet: the ring fills and a send blocks with its
    // descriptors already on their way.
    for i in 0..100_000 {
        tx.send(&(i, common::numbered_fd(i))).unwrap();
        sent.store(i + 1);
    }
}

#[test]
fn a_sender_killed_between_descriptors_and_message_does_not_shift_later_descriptors() {
    let (tx, rx) =
        multiproc::connection::pipe_with_ring::<(u32, multiproc::FdHandle)>(4096).unwrap();
    let sent = RawValue::new(0u32).unwrap();
    let child = Process::spawn(send_descriptors_until_blocked, (tx.clone(), sent.clone())).unwrap();
    // Once it has sent, the child sleeps only when the ring is full: then it
    // is blocked in a send (one whose descriptors, before the fix, had
    // already gone on the socket).
    common::eventually("the child blocks in a send", || {
        sent.load() > 0 && common::proc_state(child.pid()) == Some('S')
    });
    child.kill().unwrap();
    wait(&child);
    // What the child sent before it blocked, then messages from us.
    let sender = std::thread::spawn(move || {
        for i in 0..50 {
            tx.send(&(1000 + i, common::numbered_fd(1000 + i))).unwrap();
        }
    });
    let mut wrong = 0;
    let mut seen = 0;
    let deadline = Instant::now() + LIMIT;
    while seen < 50 {
        assert!(Instant::now() < deadline, "messages did not arrive");
        let (index, fd) = rx.recv_timeout(LIMIT).unwrap();
        if common::number_of(fd) != index {
            wrong += 1;
        }
        if index >= 1000 {
            seen += 1;
        }
    }
    sender.join().unwrap();
    assert_eq!(wrong, 0, "messages arrived with another message's descriptors");
}

/// A client's handshake on its own thread, its result bounded by `LIMIT`.
fn connect_in_background(
    address: &Address,
    key: &'static [u8],
) -> std::sync::mpsc::Receiver<multiproc::Result<Connection<u8>>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let address = address.clone();
    std::thread::spawn(move || {
        let _ = tx.send(Client::connect(&address, Some(key)));
    });
    rx
}

/// A raw connection of the impostor, which speaks frames itself.
struct Raw(UnixStream);

impl Raw {
    fn send_bytes(&self, payload: &[u8]) -> std::io::Result<()> {
        let mut frame = b"mpF1".to_vec();
        frame.extend(0u32.to_le_bytes());
        frame.extend((payload.len() as u64).to_le_bytes());
        frame.extend(payload);
        (&self.0).write_all(&frame)
    }
}

/// Accepts the next connection, bounded by `LIMIT` (the clients connect
/// before this is called).
fn accept_within(listener: &std::os::unix::net::UnixListener) -> Raw {
    let (stream, _) = listener.accept().expect("accept");
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    Raw(stream)
}

/// The next frame's payload on `conn`, or `None` if none comes within
/// `LIMIT` or the peer is gone.
fn next_message(conn: &Raw) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut header = [0u8; 16];
    (&conn.0).read_exact(&mut header).ok()?;
    let len = u64::from_le_bytes(header[8..].try_into().ok()?);
    let mut payload = vec![0; usize::try_from(len).ok().filter(|&n| n <= 4096)?];
    (&conn.0).read_exact(&mut payload).ok()?;
    Some(payload)
}

#[test]
fn a_keyless_impostor_cannot_reflect_a_clients_proof_between_its_connections() {
    const KEY: &[u8] = b"the key the impostor lacks";
    let path = std::env::temp_dir().join(format!("mp-impostor-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    // The impostor: a listener without the key, speaking raw frames.
    let impostor = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let address = Address::Unix(path.clone());

    // 1. Reflect the client's challenge to a second connection of the same
    //    client, and its answer there back to the first.
    let first_result = connect_in_background(&address, KEY);
    let first = accept_within(&impostor);
    let second_result = connect_in_background(&address, KEY);
    let second = accept_within(&impostor);
    let mut challenge = b"#CHALLENGE#".to_vec();
    challenge.extend([7u8; 32]);
    let _ = first.send_bytes(&challenge);
    if next_message(&first).is_some() {
        let _ = first.send_bytes(b"#WELCOME#");
        if let Some(their_challenge) = next_message(&first) {
            let _ = second.send_bytes(&their_challenge);
            if let Some(answer) = next_message(&second) {
                let _ = first.send_bytes(&answer);
                let _ = next_message(&first);
            }
        }
    }
    let got = first_result.recv_timeout(LIMIT).expect("the client hung");
    assert!(matches!(got, Err(Error::AuthenticationFailed)), "{:?}", got.map(|_| ()));
    drop((first, second));
    let _ = second_result.recv_timeout(LIMIT).expect("the second client hung");

    // 2. Hand the client's own proof back as the server's.
    let result = connect_in_background(&address, KEY);
    let conn = accept_within(&impostor);
    let _ = conn.send_bytes(&challenge);
    if let Some(proof) = next_message(&conn) {
        let mut welcome = b"#WELCOME#".to_vec();
        welcome.extend(&proof[proof.len().saturating_sub(32)..]);
        let _ = conn.send_bytes(&welcome);
        let _ = next_message(&conn);
    }
    let got = result.recv_timeout(LIMIT).expect("the client hung");
    assert!(matches!(got, Err(Error::AuthenticationFailed)), "{:?}", got.map(|_| ()));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn listeners_reachable_by_others_need_a_key_unless_the_caller_opts_out() {
    for address in addresses("keyless") {
        let reachable = !matches!(address, Address::Unix(_));
        match Listener::bind(address.clone(), None) {
            Err(Error::Unsupported { .. }) if reachable => {}
            Ok(_) if !reachable => {} // a path: the file's permissions guard it
            other => panic!("{address:?}: {:?}", other.map(|l| l.address().clone())),
        }
        if let Address::Unix(path) = &address {
            let _ = std::fs::remove_file(path);
        }
        // The explicit opt-out works everywhere.
        let listener = Listener::bind_unauthenticated(address).unwrap();
        let address = listener.address().clone();
        let client = std::thread::spawn(move || {
            let conn: Connection<u8> = Client::connect(&address, None).unwrap();
            conn.send(&5).unwrap();
        });
        let conn: Connection<u8> = listener.accept().unwrap();
        assert_eq!(conn.recv_timeout(LIMIT).unwrap(), 5);
        client.join().unwrap();
    }
}

/// Receives numbered messages until a sentinel; returns how many arrived
/// and how many had another message's descriptor.
fn receive_until_sentinel(rx: Connection<(u32, multiproc::FdHandle)>) -> (usize, usize) {
    let (mut got, mut wrong) = (0, 0);
    loop {
        let (index, fd) = rx.recv_timeout(LIMIT).unwrap();
        if common::number_of(fd) != index {
            wrong += 1;
        }
        if index == u32::MAX {
            return (got, wrong);
        }
        got += 1;
    }
}

#[test]
fn descriptors_stay_with_their_message_when_two_processes_share_the_receiving_end() {
    let (tx, rx) = pipe::<(u32, multiproc::FdHandle)>().unwrap();
    let receivers: Vec<_> =
        (0..2).map(|_| Process::spawn(receive_until_sentinel, rx.clone()).unwrap()).collect();
    const PER_THREAD: u32 = 1000;
    let senders = send_numbered_from_two_threads(&tx, PER_THREAD);
    for sender in senders {
        sender.join().unwrap();
    }
    for _ in &receivers {
        tx.send(&(u32::MAX, common::numbered_fd(u32::MAX))).unwrap();
    }
    let (mut got, mut wrong) = (0, 0);
    for receiver in receivers {
        let (g, w) = join(receiver).unwrap();
        got += g;
        wrong += w;
    }
    assert_eq!(wrong, 0, "messages arrived with another message's descriptors");
    assert_eq!(got, 2 * PER_THREAD as usize, "messages were lost");
}

/// Sends large messages (streamed through a small ring), small ones, and
/// messages carrying a descriptor (which take the other path), interleaved.
fn send_mixed(tx: Connection<(u32, Vec<u8>, Option<multiproc::FdHandle>)>) {
    for i in 0..6u32 {
        let size = if i % 2 == 0 { (200 << 10) + i as usize } else { 5 };
        let bytes: Vec<u8> = (0..size).map(|j| (j as u32 ^ i) as u8).collect();
        let fd = (i % 3 == 0).then(|| common::numbered_fd(i));
        tx.send(&(i, bytes, fd)).unwrap();
    }
}

#[test]
fn large_small_and_descriptor_messages_arrive_intact_and_in_order() {
    let (tx, rx) =
        multiproc::connection::pipe_with_ring::<(u32, Vec<u8>, Option<multiproc::FdHandle>)>(
            32 << 10,
        )
        .unwrap();
    let p = common::builder(multiproc::StartMethod::Spawn).spawn(send_mixed, tx).unwrap();
    for i in 0..6u32 {
        let (index, bytes, fd) = rx.recv_timeout(LIMIT).unwrap();
        assert_eq!(index, i);
        let size = if i % 2 == 0 { (200 << 10) + i as usize } else { 5 };
        assert_eq!(bytes.len(), size);
        assert!(bytes.iter().enumerate().all(|(j, &b)| b == (j as u32 ^ i) as u8), "message {i}");
        assert_eq!(fd.map(common::number_of), (i % 3 == 0).then_some(i));
    }
    join(p).unwrap();
}

fn count_until_disconnected(c: multiproc::connection::Receiver<u8>) -> usize {
    let mut n = 0;
    while c.recv().is_ok() {
        n += 1;
    }
    n
}

fn send_one(c: multiproc::connection::Sender<u8>) {
    c.send(&1).unwrap();
}

#[test]
fn a_child_holds_no_end_it_was_not_given_with_any_start_method() {
    for method in METHODS {
        let (r, w) = multiproc::connection::pipe_oneway::<u8>().unwrap();
        // Started while this process still holds `w`: a forked child must
        // not keep a copy of it open, or the reader never sees the end.
        let reader = common::builder(method).spawn(count_until_disconnected, r).unwrap();
        join(common::builder(method).spawn(send_one, w).unwrap()).unwrap();
        let mut reader = reader;
        let count = reader.join_timeout(LIMIT).unwrap();
        if count.is_none() {
            let _ = reader.kill();
        }
        assert_eq!(count, Some(1), "{method:?}: the reader never saw the end");
    }
}

/// Connects to `address` with `key` on a helper thread; the result arrives
/// on the returned channel.
fn connect_in_thread(
    address: Address,
    key: Option<&'static [u8]>,
) -> std::sync::mpsc::Receiver<multiproc::Result<Connection<u8>>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(Client::connect(&address, key));
    });
    rx
}

#[test]
fn a_key_on_one_side_only_fails_at_connect_on_both_sides() {
    // A keyed listener, a client without a key.
    let keyed = Listener::bind(addresses("key-listener").remove(0), Some(b"k")).unwrap();
    let client = connect_in_thread(keyed.address().clone(), None);
    let accepted = keyed.accept::<u8, u8>();
    assert!(matches!(accepted, Err(Error::AuthenticationFailed)), "{accepted:?}");
    let connected = client.recv_timeout(LIMIT).unwrap();
    assert!(matches!(connected, Err(Error::AuthenticationFailed)), "{connected:?}");

    // A listener without a key, a client with one.
    let open = Listener::bind(addresses("key-client").remove(0), None).unwrap();
    let client = connect_in_thread(open.address().clone(), Some(b"k"));
    let accepted = open.accept::<u8, u8>();
    assert!(matches!(accepted, Err(Error::AuthenticationFailed)), "{accepted:?}");
    let connected = client.recv_timeout(LIMIT).unwrap();
    assert!(matches!(connected, Err(Error::AuthenticationFailed)), "{connected:?}");

    // Both listeners still serve the clients that match them.
    for (listener, key) in [(&keyed, Some(&b"k"[..])), (&open, None)] {
        let client = connect_in_thread(listener.address().clone(), key);
        let conn: Connection<u8> = listener.accept().unwrap();
        let mine = client.recv_timeout(LIMIT).unwrap().unwrap();
        mine.send(&7).unwrap();
        assert_eq!(conn.recv_timeout(LIMIT).unwrap(), 7);
    }
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct RecordV1 {
    id: u8,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct RecordV2 {
    id: u8,
    weight: u64,
}

fn send_other_types(address: Address) -> Result<(), String> {
    let text: Connection<String> =
        Client::connect(&address, Some(b"k")).map_err(|e| e.to_string())?;
    text.send(&"hello".to_owned()).map_err(|e| e.to_string())?;
    let old: Connection<RecordV1> =
        Client::connect(&address, Some(b"k")).map_err(|e| e.to_string())?;
    old.send(&RecordV1 { id: 1 }).map_err(|e| e.to_string())
}

#[test]
fn a_value_of_another_type_is_a_decode_error_naming_the_expected_type() {
    let listener = Listener::bind(addresses("drift").remove(0), Some(b"k")).unwrap();
    let child = Process::spawn(send_other_types, listener.address().clone()).unwrap();
    let numbers: Connection<u64> = listener.accept().unwrap();
    let err = numbers.recv_timeout(LIMIT).unwrap_err();
    assert!(matches!(err, Error::Decode { expected: "u64", .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("`u64`") && text.contains("another type"), "{text}");

    let records: Connection<RecordV2> = listener.accept().unwrap();
    let err = records.recv_timeout(LIMIT).unwrap_err();
    assert!(err.to_string().contains("RecordV2"), "{err}");
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    join(child).unwrap().unwrap();
}
