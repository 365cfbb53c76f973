//! Property tests of every messaging decoder (stable Rust: a seeded generator, bounded count).
//! Arbitrary and mutated bytes never panic, and a counting allocator checks that decoding never
//! allocates more than a small multiple of its input (no length is trusted before it is checked).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use norman::msg::packify::Value;
use norman::msg::{AuthFields, Header, Layers, Limits, Message, MessageType};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

struct Counting;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static TOTAL: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

fn note(size: usize) {
    let _ = ON.try_with(|on| {
        if on.get() {
            TOTAL.with(|t| t.set(t.get() + size));
            PEAK.with(|p| p.set(p.get().max(size)));
        }
    });
}

#[global_allocator]
static A: Counting = Counting;

/// Runs `f` on `input` and checks what it allocated against the input's length.
fn bounded<T>(input: &[u8], f: impl FnOnce() -> T) -> T {
    TOTAL.with(|t| t.set(0));
    PEAK.with(|p| p.set(0));
    ON.with(|on| on.set(true));
    let r = f();
    ON.with(|on| on.set(false));
    let (total, peak) = (TOTAL.with(Cell::get), PEAK.with(Cell::get));
    let n = input.len();
    assert!(peak <= 48 * n + 1024, "one allocation of {peak} bytes for {n} bytes of input");
    assert!(total <= 96 * n + 8192, "{total} bytes allocated for {n} bytes of input");
    r
}

fn valid_frames(rng: &mut StdRng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let layer_sets = [Layers::new(), Layers::netaio(Some(b"s"), Some(b"k")), Layers::aead(&[1; 32])];
    for layers in &layer_sets {
        for _ in 0..4 {
            let uri: Vec<u8> = (0..rng.gen_range(0..20)).map(|_| rng.gen()).collect();
            let content: Vec<u8> = (0..rng.gen_range(0..300)).map(|_| rng.gen()).collect();
            let mut m = Message::new(MessageType(rng.gen_range(0..14)), uri, content);
            m.auth.set(
                "list",
                Value::List(vec![Value::Int(-5), Value::Float(1.0), Value::None, Value::Bool(true)]),
            );
            layers.seal(&mut m).unwrap();
            out.push(m.encode().unwrap());
        }
    }
    out
}

#[test]
fn decoders_never_panic_nor_overallocate() {
    let mut rng = StdRng::seed_from_u64(0x6e65_7461_696f);
    let frames = valid_frames(&mut rng);
    let limits = Limits::default();
    let openers =
        [Layers::netaio(Some(b"s"), Some(b"k")), Layers::aead(&[1; 32]), Layers::netaio(None, Some(b"k"))];
    let mut decoded = 0usize;
    for i in 0..60_000u32 {
        let input: Vec<u8> = match i % 4 {
            0 => {
                let mut b = vec![0u8; rng.gen_range(0..600)];
                rng.fill_bytes(&mut b);
                b
            }
            1 | 2 => {
                // A valid frame with a few bytes changed, truncated or extended.
                let mut b = frames[rng.gen_range(0..frames.len())].clone();
                for _ in 0..rng.gen_range(1..4) {
                    let at = rng.gen_range(0..b.len());
                    b[at] = rng.gen();
                }
                match rng.gen_range(0..4) {
                    0 => b.truncate(rng.gen_range(0..b.len())),
                    1 => b.extend((0..rng.gen_range(0..40)).map(|_| rng.gen::<u8>())),
                    _ => {}
                }
                b
            }
            _ => {
                // packify-looking bytes: container codes with random widths and counts.
                let mut b = vec![[0x4a, 0x8b, 0xcc, 0x4d, 0x41, 0x83, 0x04, 0x05][rng.gen_range(0..8)]];
                b.extend((0..rng.gen_range(0..64)).map(|_| rng.gen::<u8>()));
                b
            }
        };
        let _ = bounded(&input, || Value::unpack(&input));
        let _ = bounded(&input, || AuthFields::decode(&input));
        let _ = Header::decode(&input);
        let frame = Bytes::from(input.clone());
        if let Ok(mut m) = bounded(&input, || Message::decode(&frame, &limits)) {
            decoded += 1;
            for o in &openers {
                let _ = o.open(&mut m.clone());
            }
            let _ = m.encode();
            let _ = &mut m;
        }
    }
    // The mutations leave enough frames intact to reach the layers.
    assert!(decoded > 1000, "{decoded}");
    // The allocator does count: decoding a valid frame allocates (its auth fields).
    let f = Bytes::from(frames[5].clone());
    bounded(&frames[5], || Message::decode(&f, &limits).unwrap());
    assert!(TOTAL.with(Cell::get) > 0);
    // Header limits refuse before anything is read: a 65 535-byte body against a 1 KiB limit.
    let small = Limits { max_auth: 64, max_body: 1024 };
    let h = Header::decode(&[0, 0, 3, 0xff, 0xff, 0, 0, 0, 0]).unwrap();
    assert!(small.check(&h).is_err());
}
