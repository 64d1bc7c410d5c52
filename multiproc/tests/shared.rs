//! Shared values and arrays between processes.
#![allow(clippy::approx_constant)] // the seed writes 3.1415927 literally

mod common;

use common::{METHODS, join};
use multiproc::bytemuck::{Pod, Zeroable};
use multiproc::{Array, Process, RawArray, RawValue, Value};

fn seed_scenario(args: (Value<f64>, Array<i32>)) {
    let (num, arr) = args;
    num.set(3.1415927);
    for x in arr.lock().unwrap().iter_mut() {
        *x = -*x;
    }
}

#[test]
fn the_seed_scenario_negates_an_array_and_sets_a_value_in_a_child() {
    for method in METHODS {
        let num = Value::new(0.0f64).unwrap();
        let arr = Array::from_iter(0..10).unwrap();
        let p = common::builder(method).spawn(seed_scenario, (num.clone(), arr.clone())).unwrap();
        join(p).unwrap();
        assert_eq!(num.get(), 3.1415927);
        assert_eq!(arr.to_vec(), [0, -1, -2, -3, -4, -5, -6, -7, -8, -9], "{method:?}");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
#[repr(C)]
struct Particle {
    position: [f32; 3],
    mass: f32,
    id: u64,
}

fn move_particles(args: (Value<Particle>, Array<Particle>)) -> u64 {
    let (single, many) = args;
    single.lock().unwrap().position[0] += 1.0;
    let mut guard = many.lock().unwrap();
    for p in guard.iter_mut() {
        p.mass *= 2.0;
    }
    guard.iter().map(|p| p.id).sum()
}

#[test]
fn values_and_arrays_of_a_repr_c_struct_are_shared() {
    let p = Particle { position: [1.0, 2.0, 3.0], mass: 0.5, id: 7 };
    let single = Value::new(p).unwrap();
    let many = Array::from_iter((0..4).map(|id| Particle { id, ..p })).unwrap();
    let child = Process::spawn(move_particles, (single.clone(), many.clone())).unwrap();
    assert_eq!(join(child).unwrap(), 6);
    assert_eq!(single.get().position, [2.0, 2.0, 3.0]);
    assert!(many.to_vec().iter().all(|q| q.mass == 1.0));
}

fn hammer(args: (RawValue<u64>, RawArray<i32>)) {
    let (counter, slots) = args;
    for i in 0..50_000 {
        counter.fetch_add(1);
        slots.fetch_sub(i % 4, 1);
    }
}

#[test]
fn raw_integers_offer_lock_free_atomics_across_processes() {
    let counter = RawValue::new(0u64).unwrap();
    let slots = RawArray::<i32>::new(4).unwrap();
    let children: Vec<_> =
        (0..3).map(|_| Process::spawn(hammer, (counter.clone(), slots.clone())).unwrap()).collect();
    hammer((counter.clone(), slots.clone()));
    for child in children {
        join(child).unwrap();
    }
    assert_eq!(counter.load(), 200_000);
    assert_eq!(slots.to_vec(), [-50_000; 4]);
    assert_eq!(counter.compare_exchange(200_000, 1), Ok(200_000));
    assert_eq!(counter.swap(5), 1);
}

#[test]
fn arrays_report_bounds() {
    let a = Array::<u16>::new(2).unwrap();
    assert_eq!(a.get(2), None);
    assert_eq!(a.len(), 2);
    let r = RawArray::from_slice(&[1u8, 2]).unwrap();
    assert_eq!(r.get(5), None);
    let empty = Array::<u64>::new(0).unwrap();
    assert!(empty.is_empty() && empty.to_vec().is_empty());
}

#[test]
#[should_panic(expected = "out of range")]
fn setting_past_the_end_panics_like_a_slice() {
    RawArray::<u8>::new(1).unwrap().set(1, 0);
}

fn fill_chunk(chunk: multiproc::ArrayChunk<f64>) -> usize {
    let start = chunk.range().start;
    let mut g = chunk.edit();
    for (i, x) in g.iter_mut().enumerate() {
        *x = ((start + i) * 2) as f64;
    }
    g.len()
}

fn split_again(arr: RawArray<f64>) -> bool {
    arr.split_chunks(1).is_err()
}

#[test]
fn each_worker_fills_its_own_chunk_and_an_array_is_split_only_once() {
    for method in METHODS {
        let arr = RawArray::<f64>::new(1001).unwrap();
        let chunks = arr.split_chunks(250).unwrap();
        assert_eq!(chunks.len(), 5);
        let workers: Vec<_> = chunks
            .into_iter()
            .map(|chunk| common::builder(method).spawn(fill_chunk, chunk).unwrap())
            .collect();
        let filled: usize = workers.into_iter().map(|w| join(w).unwrap()).sum();
        assert_eq!(filled, 1001);
        let expected: Vec<f64> = (0..1001).map(|i| (i * 2) as f64).collect();
        assert_eq!(arr.to_vec(), expected, "{method:?}");
        // No process can hand out overlapping chunks later.
        assert!(arr.split_chunks(500).is_err());
        let p = common::builder(method).spawn(split_again, arr.clone()).unwrap();
        assert!(join(p).unwrap(), "a child split an array already split");
    }
}

#[test]
fn a_chunk_reads_and_writes_only_inside_its_range() {
    let arr = RawArray::from_iter(0..10u32).unwrap();
    let chunks = arr.split_chunks(4).unwrap();
    let last = &chunks[2];
    assert_eq!(last.range(), 8..10);
    let mut two = [0; 2];
    last.read_into(0, &mut two).unwrap();
    assert_eq!(two, [8, 9]);
    assert!(matches!(last.read_into(1, &mut two), Err(multiproc::Error::OutOfBounds { .. })));
    assert!(matches!(chunks[0].write_from(3, &[1, 1]), Err(multiproc::Error::OutOfBounds { .. })));
    assert_eq!(arr.get(4), Some(4), "a refused write wrote nothing");
    chunks[1].write_from(0, &[40, 50]).unwrap();
    assert_eq!(arr.to_vec(), [0, 1, 2, 3, 40, 50, 6, 7, 8, 9]);
}

fn write_middle(args: (Array<i64>, RawArray<i64>)) {
    let (locked, raw) = args;
    locked.write_from(2, &[-2, -3]).unwrap();
    raw.write_from(5, &[-5, -6, -7]).unwrap();
}

#[test]
fn a_child_writes_a_sub_slice_and_the_parent_reads_it_back() {
    for method in METHODS {
        let locked = Array::from_iter(0..6i64).unwrap();
        let raw = RawArray::from_iter(0..8i64).unwrap();
        let p = common::builder(method).spawn(write_middle, (locked.clone(), raw.clone()));
        join(p.unwrap()).unwrap();
        let mut out = [0; 4];
        locked.read_into(1, &mut out).unwrap();
        assert_eq!(out, [1, -2, -3, 4], "{method:?}");
        raw.read_into(4, &mut out).unwrap();
        assert_eq!(out, [4, -5, -6, -7], "{method:?}");
        assert!(locked.read_into(3, &mut out).is_err());
        assert!(raw.write_from(5, &out).is_err());
    }
}

fn add_ones(args: (RawValue<f64>, RawArray<f32>, Value<f64>, Array<f64>)) {
    let (raw, raw_arr, value, arr) = args;
    for _ in 0..5_000 {
        raw.fetch_add(1.0);
        raw_arr.fetch_add(1, 1.0);
        value.fetch_add(1.0);
        arr.fetch_add(0, 1.0);
    }
}

#[test]
fn float_additions_from_several_processes_lose_nothing() {
    let raw = RawValue::new(0.0f64).unwrap();
    let raw_arr = RawArray::<f32>::new(2).unwrap();
    let value = Value::new(0.0f64).unwrap();
    let arr = Array::<f64>::new(1).unwrap();
    let args = (raw.clone(), raw_arr.clone(), value.clone(), arr.clone());
    let children: Vec<_> =
        (0..2).map(|_| Process::spawn(add_ones, args.clone()).unwrap()).collect();
    add_ones(args);
    for c in children {
        join(c).unwrap();
    }
    // Whole numbers up to 2^24 add exactly, so any lost update shows.
    assert_eq!(raw.load(), 15_000.0);
    assert_eq!(raw_arr.to_vec(), [0.0, 15_000.0]);
    assert_eq!(value.get(), 15_000.0);
    assert_eq!(arr.to_vec(), [15_000.0]);
    assert_eq!(raw.fetch_sub(0.5), 15_000.0);
    assert_eq!(raw.compare_exchange(14_999.5, 1.0), Ok(14_999.5));
}
