//! A slab: stable `u32` keys into fixed-size pages of slots, reused through a free
//! list.
//!
//! Pages rather than one vector: a vector doubles, so at a million sessions it may
//! hold as many empty slots again, and each doubling copies every session while the
//! shard's event loop waits. A page is allocated when the last one fills and never
//! moves.

/// Slots per page.
const PAGE: usize = 256;

pub struct Slab<T> {
    pages: Vec<Box<[Option<T>]>>,
    /// Slots handed out so far, in order (the next never-used key).
    used: u32,
    free: Vec<u32>,
}

impl<T> Default for Slab<T> {
    fn default() -> Slab<T> {
        Slab {
            pages: Vec::new(),
            used: 0,
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    pub fn insert(&mut self, value: T) -> u32 {
        let key = match self.free.pop() {
            Some(key) => key,
            None => {
                let key = self.used;
                if key as usize == self.pages.len() * PAGE {
                    self.pages.push((0..PAGE).map(|_| None).collect());
                }
                self.used += 1;
                key
            }
        };
        let (page, slot) = split(key);
        self.pages[page][slot] = Some(value);
        key
    }

    /// The key the next `insert` returns.
    pub fn next_key(&self) -> u32 {
        self.free.last().copied().unwrap_or(self.used)
    }

    pub fn remove(&mut self, key: u32) -> Option<T> {
        let value = self.slot_mut(key)?.take()?;
        self.free.push(key);
        Some(value)
    }

    /// Entries present.
    pub fn count(&self) -> usize {
        self.used as usize - self.free.len()
    }

    /// Entries present, with their keys.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.pages
            .iter()
            .flat_map(|page| page.iter())
            .enumerate()
            .filter_map(|(k, e)| Some((k as u32, e.as_ref()?)))
    }

    pub fn get(&self, key: u32) -> Option<&T> {
        let (page, slot) = split(key);
        self.pages.get(page)?[slot].as_ref()
    }

    pub fn get_mut(&mut self, key: u32) -> Option<&mut T> {
        self.slot_mut(key)?.as_mut()
    }

    fn slot_mut(&mut self, key: u32) -> Option<&mut Option<T>> {
        let (page, slot) = split(key);
        Some(&mut self.pages.get_mut(page)?[slot])
    }
}

fn split(key: u32) -> (usize, usize) {
    (key as usize / PAGE, key as usize % PAGE)
}

#[cfg(test)]
mod tests {
    use super::Slab;

    #[test]
    fn keys_are_reused() {
        let mut s = Slab::default();
        let a = s.insert("a");
        let b = s.insert("b");
        assert_eq!(s.remove(a), Some("a"));
        assert_eq!(s.remove(a), None);
        assert_eq!(s.count(), 1);
        let c = s.insert("c");
        assert_eq!(c, a);
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.count(), 2);
        assert_eq!(s.iter().map(|(_, v)| *v).collect::<Vec<_>>(), ["c", "b"]);
    }

    #[test]
    fn keys_span_pages() {
        let mut s = Slab::default();
        let keys: Vec<u32> = (0..1000).map(|i| s.insert(i)).collect();
        assert_eq!(keys, (0..1000).collect::<Vec<u32>>());
        assert_eq!(s.get(999), Some(&999));
        assert_eq!(s.get(1000), None);
        assert_eq!(s.get(5000), None);
        assert_eq!(s.remove(300), Some(300));
        assert_eq!(s.get_mut(300), None);
        assert_eq!(s.count(), 999);
        assert_eq!(s.insert(7), 300);
        assert_eq!(s.iter().count(), 1000);
        assert_eq!(s.iter().nth(300), Some((300, &7)));
    }
}
