//! A bounded queue between the thread that reads codex's stdout and the
//! turn's loop, for either transport. Bounded by bytes, not by count: when
//! the host reads slowly the loop falls behind, the queue fills, the reader
//! thread blocks, codex blocks on its own full pipe, and the adapter's
//! memory stays flat however long codex's stream is.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How many bytes of codex's lines may wait for the loop. One line is
/// always let in, whatever its size (the line reader caps a line).
pub const QUEUE_BYTES: usize = 1024 * 1024;

/// Something that can be queued and knows its size in memory.
pub trait Weight {
    fn bytes(&self) -> usize;
}

struct State<T> {
    items: VecDeque<T>,
    bytes: usize,
    /// The sending side is gone: nothing more will come.
    sender_gone: bool,
    /// The receiving side is gone: sends fail at once.
    receiver_gone: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Signalled when an item arrives or the sender goes.
    arrived: Condvar,
    /// Signalled when room is made or the receiver goes.
    taken: Condvar,
}

pub struct Sender<T> {
    shared: Arc<Shared<T>>,
    limit: usize,
}

pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

/// Why [`Receiver::recv_timeout`] returned nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum RecvError {
    Timeout,
    /// The sender is gone and the queue is empty.
    Disconnected,
}

/// A queue holding at most `limit` bytes (or one item of any size).
pub fn bounded<T: Weight>(limit: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            bytes: 0,
            sender_gone: false,
            receiver_gone: false,
        }),
        arrived: Condvar::new(),
        taken: Condvar::new(),
    });
    (
        Sender {
            shared: Arc::clone(&shared),
            limit,
        },
        Receiver { shared },
    )
}

impl<T: Weight> Sender<T> {
    /// Queues `item`, waiting while the queue is full; gives the item back
    /// when the receiver is gone.
    pub fn send(&self, item: T) -> Result<(), T> {
        let Ok(mut state) = self.shared.state.lock() else {
            return Err(item);
        };
        let size = item.bytes();
        while !state.receiver_gone
            && !state.items.is_empty()
            && state.bytes.saturating_add(size) > self.limit
        {
            state = match self.shared.taken.wait(state) {
                Ok(state) => state,
                Err(_) => return Err(item),
            };
        }
        if state.receiver_gone {
            return Err(item);
        }
        state.bytes += size;
        state.items.push_back(item);
        self.shared.arrived.notify_one();
        Ok(())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.sender_gone = true;
        }
        self.shared.arrived.notify_all();
    }
}

impl<T: Weight> Receiver<T> {
    /// The next item, waiting at most `limit` for one.
    pub fn recv_timeout(&self, limit: Duration) -> Result<T, RecvError> {
        let deadline = Instant::now().checked_add(limit);
        let Ok(mut state) = self.shared.state.lock() else {
            return Err(RecvError::Disconnected);
        };
        loop {
            if let Some(item) = state.items.pop_front() {
                state.bytes -= item.bytes();
                self.shared.taken.notify_one();
                return Ok(item);
            }
            if state.sender_gone {
                return Err(RecvError::Disconnected);
            }
            let now = Instant::now();
            let wait = match deadline {
                Some(deadline) if deadline > now => deadline - now,
                Some(_) => return Err(RecvError::Timeout),
                None => Duration::from_secs(3600),
            };
            state = match self.shared.arrived.wait_timeout(state, wait) {
                Ok((state, _)) => state,
                Err(_) => return Err(RecvError::Disconnected),
            };
        }
    }

    /// Lets a sender blocked on a full queue go (its send fails): the
    /// reader thread can then end and be joined.
    pub fn close(&self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.receiver_gone = true;
            state.items.clear();
            state.bytes = 0;
        }
        self.shared.taken.notify_all();
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.receiver_gone = true;
        }
        self.shared.taken.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Weight for Vec<u8> {
        fn bytes(&self) -> usize {
            self.len()
        }
    }

    #[test]
    fn a_full_queue_blocks_the_sender_until_the_receiver_takes() {
        let (sender, receiver) = bounded::<Vec<u8>>(10);
        let producer = std::thread::spawn(move || {
            for n in 0..100u8 {
                sender.send(vec![n; 4]).unwrap();
            }
        });
        // The sender can be at most ~10 bytes ahead: it waits for us.
        std::thread::sleep(Duration::from_millis(50));
        {
            let state = receiver.shared.state.lock().unwrap();
            assert!(state.bytes <= 10, "{} bytes queued", state.bytes);
            assert!(state.items.len() <= 2);
        }
        let mut got = Vec::new();
        while let Ok(item) = receiver.recv_timeout(Duration::from_secs(10)) {
            got.push(item[0]);
        }
        producer.join().unwrap();
        assert_eq!(got, (0..100).collect::<Vec<u8>>());
    }

    #[test]
    fn an_item_over_the_limit_still_passes_alone() {
        let (sender, receiver) = bounded::<Vec<u8>>(10);
        sender.send(vec![0; 100]).unwrap();
        assert_eq!(receiver.recv_timeout(Duration::ZERO).unwrap().len(), 100);
        assert_eq!(
            receiver.recv_timeout(Duration::from_millis(1)),
            Err(RecvError::Timeout)
        );
        drop(sender);
        assert_eq!(
            receiver.recv_timeout(Duration::from_secs(1)),
            Err(RecvError::Disconnected)
        );
    }

    #[test]
    fn closing_the_receiver_frees_a_blocked_sender() {
        let (sender, receiver) = bounded::<Vec<u8>>(10);
        sender.send(vec![0; 10]).unwrap();
        let blocked = std::thread::spawn(move || sender.send(vec![1; 10]));
        std::thread::sleep(Duration::from_millis(20));
        receiver.close();
        assert!(blocked.join().unwrap().is_err());
    }
}
