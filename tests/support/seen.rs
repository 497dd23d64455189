//! What a `done` of [`super::read_until`] has seen, taken in as records come.

use super::Record;

/// What a `done` of [`super::read_until`] has seen, taken in as records come: reading n
/// records stays n steps (asking over all records read at every record is n²: the chaos run's
/// reader never read its ~32,000 alerts in five minutes).
#[derive(Default)]
pub struct Seen<T> {
    taken: std::cell::Cell<usize>,
    pub items: std::cell::RefCell<T>,
}

impl<T> Seen<T> {
    /// Takes the records of `records` not taken yet into `items` with `take`.
    pub fn take(&self, records: &[Record], mut take: impl FnMut(&mut T, &Record)) {
        let mut items = self.items.borrow_mut();
        for record in &records[self.taken.get().min(records.len())..] {
            take(&mut items, record);
        }
        self.taken.set(records.len());
    }
}
