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
