//! A vector that grows a fixed page at a time: the index's arrays reach hundreds of MiB
//! at ten million entities, and a `Vec` doubling there would copy all of it and hold
//! both copies at once (the peak memory) and up to twice what it needs afterwards.

/// Elements a page holds.
const PAGE_BITS: u32 = 16;
pub const PAGE: usize = 1 << PAGE_BITS;

/// Elements of `T` in pages of 65,536.
pub struct Paged<T> {
    pages: Vec<Box<[T]>>,
    len: usize,
}

impl<T> Default for Paged<T> {
    fn default() -> Self {
        Paged {
            pages: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Copy> Paged<T> {
    /// How many elements it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The element at `i`.
    pub fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        self.pages.get(i >> PAGE_BITS)?.get(i & (PAGE - 1))
    }

    /// The page holding element `i`, and where in it `i` is.
    pub fn place(&self, i: usize) -> (&[T], usize) {
        (&self.pages[i >> PAGE_BITS], i & (PAGE - 1))
    }

    /// [`Paged::place`], to change.
    pub fn place_mut(&mut self, i: usize) -> (&mut [T], usize) {
        (&mut self.pages[i >> PAGE_BITS], i & (PAGE - 1))
    }

    /// Grows it to `len` elements, the new ones `fill`.
    pub fn grow(&mut self, len: usize, fill: T) {
        while self.pages.len() * PAGE < len {
            self.pages.push(vec![fill; PAGE].into_boxed_slice());
        }
        if len > self.len {
            for i in self.len..len {
                self.pages[i >> PAGE_BITS][i & (PAGE - 1)] = fill;
            }
            self.len = len;
        }
    }

    /// Appends `value`.
    pub fn push(&mut self, value: T) {
        self.grow(self.len + 1, value);
    }

    /// The bytes it holds.
    pub fn heap_bytes(&self) -> usize {
        self.pages.len() * PAGE * std::mem::size_of::<T>()
            + self.pages.capacity() * std::mem::size_of::<Box<[T]>>()
    }
}

impl<T: Copy> std::ops::Index<usize> for Paged<T> {
    type Output = T;

    fn index(&self, i: usize) -> &T {
        &self.pages[i >> PAGE_BITS][i & (PAGE - 1)]
    }
}

impl<T: Copy> std::ops::IndexMut<usize> for Paged<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.pages[i >> PAGE_BITS][i & (PAGE - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_keep_their_place_across_pages() {
        let mut v = Paged::default();
        for i in 0..200_000u32 {
            v.push(i);
        }
        assert_eq!(v.len(), 200_000);
        assert_eq!(
            (v[0], v[65_535], v[65_536], v[199_999]),
            (0, 65_535, 65_536, 199_999)
        );
        assert_eq!(v.get(200_000), None);
        v.grow(200_010, 7);
        v[200_005] += 1;
        assert_eq!(
            (v[199_999], v[200_005], v.get(200_009)),
            (199_999, 8, Some(&7))
        );
        assert_eq!(v.heap_bytes() / 4 / PAGE, 4, "four pages, no more");
    }
}
