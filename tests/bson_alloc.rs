//! The frame reader never allocates past its limit, whatever a peer announces: a global allocator
//! records the largest single allocation while the reader works (one test in this binary, so no
//! other test's allocations are counted).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use norman::bson_frame::{FrameReader, Limits};

struct Recording;

static ON: AtomicBool = AtomicBool::new(false);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            LARGEST.fetch_max(new_size, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Recording = Recording;

#[test]
fn announced_lengths_never_allocate_past_the_limit() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let limit = 4096u32;
    // Every announced length from tiny to 2 GiB, each followed by a few bytes and the end.
    let mut lengths: Vec<i32> = vec![i32::MAX, i32::MIN, -1, 0, 3, 4, 5, 4095, 4096, 4097, 1 << 24, 1 << 30];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        lengths.push(x as i32);
    }
    let mut outcomes = [0u32; 2];
    for length in lengths {
        let mut data = length.to_le_bytes().to_vec();
        data.extend_from_slice(&[0x10, b'a', 0, 1, 0, 0, 0, 0]);
        LARGEST.store(0, Ordering::Relaxed);
        ON.store(true, Ordering::Relaxed);
        let mut frames = FrameReader::new(Limits { max_bytes: limit, ..Limits::default() });
        let result = runtime.block_on(frames.read(&mut &data[..], None)).map(|d| d.is_some());
        ON.store(false, Ordering::Relaxed);
        let largest = LARGEST.load(Ordering::Relaxed);
        // The frame buffer is at most the limit; error messages and the like are far smaller.
        assert!(largest <= limit as usize, "length {length}: an allocation of {largest} bytes");
        if (5..=limit as i32).contains(&length) {
            outcomes[0] += 1;
            assert!(largest >= length as usize || result.is_err(), "{length}");
        } else {
            outcomes[1] += 1;
            assert!(result.is_err() && largest < 1024, "length {length}: {result:?}, {largest} bytes");
        }
    }
    assert!(outcomes[1] > 1900, "{outcomes:?}");
}
