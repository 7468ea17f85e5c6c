//! The DATA path allocates nothing per byte or per line: feeding a megabyte of message data
//! costs a handful of allocations (buffer growth), not thousands.
//!
//! This test binary counts allocations with a wrapper around the system allocator, which needs
//! `unsafe` (the GlobalAlloc trait is unsafe to implement); it has this one test only, so no
//! other thread allocates while it counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use postroom_smtp::{Event, Session, SessionConfig};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed unchanged to the system allocator; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn drain(session: &mut Session) -> Option<Box<postroom_smtp::Message>> {
    loop {
        match session.poll() {
            Event::NeedInput => {
                session.clear_output();
                return None;
            }
            Event::CheckRecipient { .. } => session.recipient_result(Ok(())),
            Event::Message(m) => return Some(m),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn data_phase_allocations_do_not_grow_with_message_size() {
    let mut session = Session::new(SessionConfig::default());
    session.receive(b"EHLO c\r\nMAIL FROM:<a@x.example> SIZE=1200000\r\nRCPT TO:<b@y.example>\r\n");
    assert!(drain(&mut session).is_none());
    session.receive(b"DATA\r\n");
    assert!(drain(&mut session).is_none());

    let line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n";
    let mut chunk = Vec::new();
    while chunk.len() + line.len() <= 16 * 1024 {
        chunk.extend_from_slice(line);
    }
    let chunks = 1024 * 1024 / chunk.len();

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..chunks {
        session.receive(&chunk);
        assert!(drain(&mut session).is_none());
    }
    let during = ALLOCATIONS.load(Ordering::Relaxed) - before;

    session.receive(b".\r\n");
    let message = drain(&mut session).expect("message complete");
    assert_eq!(message.content.len(), chunks * chunk.len());
    // About 14,000 lines went through; a per-line allocation would show here.
    assert!(
        during < 32,
        "{during} allocations while reading {chunks} chunks of data"
    );
}
