//! Every scenario of the seed material (a tutorial on process
//! intercommunication in Python, in `shared/seed/`), in Rust, printing the
//! same output.
#![allow(clippy::approx_constant)] // the seed writes 3.1415927 literally
//!
//! ```sh
//! cargo run --release --example seed
//! ```
//!
//! The PyCSP scenario runs its processes as threads and then, one word
//! changed (`.os()`), as OS processes.

use multiproc::connection::Connection;
use multiproc::csp::{self, Channel, Reader, Writer, process};
use multiproc::manager::{ListProxy, Namespace};
use multiproc::{Array, Manager, Process, Queue, StartMethod, Value, current_process, pipe};

/// The target of the process scenario.
fn square(x: u64) -> u64 {
    println!("{} computes {x} * {x}", current_process().name());
    x * x
}

/// Python: `p = Process(target=f, args=(7,)); p.start(); p.join()`, with each
/// start method.
fn processes() -> Result<(), multiproc::Error> {
    let p = Process::spawn(square, 7)?;
    println!("{}", p.join()?);
    for method in [StartMethod::Spawn, StartMethod::Fork, StartMethod::ForkServer] {
        let p = Process::builder()
            .name(format!("{method:?}-worker"))
            .start_method(method)
            .spawn(square, 3)?;
        println!("{}", p.join()?);
    }
    Ok(())
}

/// The target of the queue scenario: `q.put([42, None, 'hello'])`.
fn put_hello(q: Queue<(i32, Option<()>, String)>) {
    q.put((42, None, "hello".to_owned())).expect("put");
}

/// Python: `q = Queue(); p = Process(target=f, args=(q,)); print(q.get())`.
fn queues() -> Result<(), multiproc::Error> {
    let q = Queue::new()?;
    let p = Process::spawn(put_hello, q.clone())?;
    println!("{:?}", q.get()?);
    p.join()?;
    Ok(())
}

/// The target of the pipe scenario: `conn.send([42, None, 'hello'])`.
fn send_hello(conn: Connection<(i32, Option<()>, String)>) {
    conn.send(&(42, None, "hello".to_owned())).expect("send");
}

/// Python: `parent_conn, child_conn = Pipe()`, a child sends through its end,
/// the parent prints what it receives.
fn pipes() -> Result<(), multiproc::Error> {
    let (parent_conn, child_conn) = pipe()?;
    let p = Process::spawn(send_hello, child_conn)?;
    println!("{:?}", parent_conn.recv()?);
    p.join()?;
    Ok(())
}

type Record = (String, u32);

/// The first child of the manager scenario.
fn insert_record(args: (Record, ListProxy<Record>)) {
    let (record, records) = args;
    records.append(record).expect("append");
    println!("A New record is added\n");
}

/// The second child of the manager scenario.
fn print_records(records: ListProxy<Record>) {
    for (name, score) in records.to_vec().expect("records") {
        println!("Name: {name}\nScore: {score}\n");
    }
}

/// Python: `with multiprocessing.Manager() as manager: records =
/// manager.list([...])`, one child appends a record, another prints them all.
fn manager_list() -> Result<(), multiproc::Error> {
    let manager = Manager::start()?;
    let records = manager
        .list([("Computers", 1), ("Histoty", 5), ("Hindi", 9)].map(|(n, s)| (n.to_owned(), s)))?;
    let new_record = ("English".to_owned(), 3);
    let p1 = Process::spawn(insert_record, (new_record, records.clone()))?;
    p1.join()?;
    let p2 = Process::spawn(print_records, records.clone())?;
    p2.join()?;
    Ok(())
}

/// The child of the namespace scenario: `using_ns.x += 5; using_ns.y *= 10`,
/// each an atomic update.
fn mng_nasp(using_ns: Namespace) {
    using_ns.update("x", |x: i64| x + 5).expect("x");
    using_ns.update("y", |y: i64| y * 10).expect("y");
}

/// Python: `using_ns = manager.Namespace(); using_ns.x = 1; using_ns.y = 1`,
/// printed before and after a child changes it.
fn manager_namespace() -> Result<(), multiproc::Error> {
    let manager = Manager::start()?;
    let using_ns = manager.namespace()?;
    using_ns.set("x", 1)?;
    using_ns.set("y", 1)?;
    println!("before {using_ns}");
    let p = Process::spawn(mng_nasp, using_ns.clone())?;
    p.join()?;
    println!("after {using_ns}");
    Ok(())
}

/// The target of the Value/Array scenario.
fn f(args: (Value<f64>, Array<i32>)) {
    let (n, a) = args;
    n.set(3.1415927);
    for x in a.lock().expect("lock").iter_mut() {
        *x = -*x;
    }
}

/// Python: `num = Value('d', 0.0); arr = Array('i', range(10))`, a child
/// sets the value and negates the array, the parent prints both.
fn value_and_array() -> Result<(), multiproc::Error> {
    let num = Value::new(0.0f64)?;
    let arr = Array::from_iter(0..10)?;
    let p = Process::spawn(f, (num.clone(), arr.clone()))?;
    p.join()?;
    println!("{}", num.get());
    println!("{:?}", arr.to_vec());
    Ok(())
}

/// PyCSP: `@process def P1(): print('P1 exiting')`.
#[process]
fn p1() {
    println!("P1 exiting");
}

/// PyCSP: `@process def P2(): print('P2 exiting')`.
#[process]
fn p2() {
    println!("P2 exiting");
}

/// Process 1 of the seed's network: sends on channel 1, answers arrive on
/// channel 2.
#[process]
fn process1(out: Writer<String>, inp: Reader<String>) -> csp::Result<()> {
    out.write("hello from Process 1".to_owned())?;
    println!("Process 1 got: {}", inp.read()?);
    Ok(())
}

/// Process 2 of the seed's network: answers on channel 2 what came on
/// channel 1.
#[process]
fn process2(inp: Reader<String>, out: Writer<String>) -> csp::Result<()> {
    let message = inp.read()?;
    println!("Process 2 got: {message}");
    out.write(format!("Process 2 read {} bytes", message.len()))?;
    Ok(())
}

/// Python (PyCSP): `Parallel(P1(), P2())`, and the network of two processes
/// talking over two channels; in threads, then in OS processes.
fn pycsp() -> Result<(), multiproc::Error> {
    csp::parallel!(p1(), p2())?;
    csp::parallel!(p1().os(), p2().os())?;
    for os in [false, true] {
        let (channel1, channel2) = (Channel::<String>::new()?, Channel::<String>::new()?);
        let mut first = process1(channel1.writer(), channel2.reader());
        let mut second = process2(channel1.reader(), channel2.writer());
        if os {
            (first, second) = (first.os(), second.os());
        }
        let (a, b) = csp::parallel!(first, second)?;
        a?;
        b?;
    }
    Ok(())
}

fn main() -> Result<(), multiproc::Error> {
    println!("== Processes: start a process, join it, print its result ==");
    processes()?;
    println!();
    println!("== Queues ==");
    queues()?;
    println!();
    println!("== Pipes ==");
    pipes()?;
    println!();
    println!("== Manager: a shared list of records ==");
    manager_list()?;
    println!("== Namespaces in Manager ==");
    manager_namespace()?;
    println!();
    println!("== Ctypes-Array and Value ==");
    value_and_array()?;
    println!();
    println!("== CSP (PyCSP): Parallel(P1(), P2()), and two processes over two channels ==");
    pycsp()?;
    Ok(())
}
