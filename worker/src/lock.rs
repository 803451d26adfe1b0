//! A first-come-first-served async lock for one isolate (no threads, no `Send`). A Durable
//! Object's input gate does not hold other requests back while one awaits a subrequest, so the
//! session serialises its work with this lock: the tenth of ten concurrent refreshes starts
//! only after the first has stored the rotated tokens.

use core::cell::RefCell;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use std::collections::VecDeque;
use std::rc::Rc;

#[derive(Default)]
struct LockState {
    locked: bool,
    next_ticket: u64,
    /// Waiting tickets in arrival order, with the waker to call when it is their turn.
    queue: VecDeque<(u64, Option<Waker>)>,
}

impl LockState {
    fn wake_front(&mut self) {
        if let Some((_, Some(w))) = self.queue.front_mut() {
            w.wake_by_ref();
        }
    }
}

/// The lock.
#[derive(Clone, Default)]
pub struct AsyncLock(Rc<RefCell<LockState>>);

impl AsyncLock {
    /// A free lock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for the lock; it is released when the guard drops.
    pub fn acquire(&self) -> Acquire {
        let mut s = self.0.borrow_mut();
        let ticket = s.next_ticket;
        s.next_ticket += 1;
        s.queue.push_back((ticket, None));
        Acquire {
            lock: self.0.clone(),
            ticket: Some(ticket),
        }
    }

    /// True while someone holds it.
    pub fn is_locked(&self) -> bool {
        self.0.borrow().locked
    }
}

/// The future of [`AsyncLock::acquire`]. Dropping it while it waits gives up its place.
pub struct Acquire {
    lock: Rc<RefCell<LockState>>,
    ticket: Option<u64>,
}

impl Future for Acquire {
    type Output = LockGuard;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<LockGuard> {
        let Some(ticket) = self.ticket else {
            panic!("Acquire polled after completion");
        };
        let mut s = self.lock.borrow_mut();
        let first = s.queue.front().map(|(t, _)| *t) == Some(ticket);
        if first && !s.locked {
            s.locked = true;
            s.queue.pop_front();
            drop(s);
            self.ticket = None;
            return Poll::Ready(LockGuard(self.lock.clone()));
        }
        if let Some(entry) = s.queue.iter_mut().find(|(t, _)| *t == ticket) {
            entry.1 = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket {
            let mut s = self.lock.borrow_mut();
            s.queue.retain(|(t, _)| *t != ticket);
            if !s.locked {
                s.wake_front();
            }
        }
    }
}

/// Holds the lock.
#[must_use = "the lock is released when the guard drops"]
pub struct LockGuard(Rc<RefCell<LockState>>);

impl Drop for LockGuard {
    fn drop(&mut self) {
        let mut s = self.0.borrow_mut();
        s.locked = false;
        s.wake_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(f: &mut Acquire, waker: &Waker) -> Option<LockGuard> {
        match Pin::new(f).poll(&mut Context::from_waker(waker)) {
            Poll::Ready(g) => Some(g),
            Poll::Pending => None,
        }
    }

    #[test]
    fn first_come_first_served_and_cancellation() {
        let wakes = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let lock = AsyncLock::new();
        let mut a = lock.acquire();
        let mut b = lock.acquire();
        let mut c = lock.acquire();
        // c cannot jump the queue even when polled first.
        assert!(poll(&mut c, &waker).is_none());
        let ga = poll(&mut a, &waker).expect("a first");
        assert!(lock.is_locked());
        assert!(poll(&mut b, &waker).is_none());
        drop(ga);
        assert!(wakes.0.load(Ordering::SeqCst) >= 1, "b woken");
        assert!(poll(&mut c, &waker).is_none());
        // b gives up while waiting: c is next.
        drop(b);
        let gc = poll(&mut c, &waker).expect("c after b left");
        drop(gc);
        assert!(!lock.is_locked());
        let mut d = lock.acquire();
        assert!(poll(&mut d, &waker).is_some());
    }
}
