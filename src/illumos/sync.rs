//! `KMutex<T>`: data behind an illumos adaptive mutex (`kmutex_t`).
//!
//! Kernel data is never guarded by a spin lock: a spinning illumos thread
//! can be preempted while holding it (docs/rust-in-the-illumos-kernel.md
//! §1.5). A `kmutex_t` must stay where `mutex_init` put it, so a `KMutex`
//! only exists boxed (in kmem) and is initialised at its final address.

use alloc::boxed::Box;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};

use super::sys::{self, KMutexRaw};

pub struct KMutex<T> {
    raw: UnsafeCell<KMutexRaw>,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex serialises all access to `data`.
unsafe impl<T: Send> Send for KMutex<T> {}
// SAFETY: as above; `&KMutex` only hands out `data` under the lock.
unsafe impl<T: Send> Sync for KMutex<T> {}

impl<T> KMutex<T> {
    /// A new mutex around `value`, in kmem, initialised in place.
    pub fn new(value: T) -> Box<Self> {
        let m = Box::new(Self {
            raw: UnsafeCell::new(KMutexRaw::zeroed()),
            data: UnsafeCell::new(value),
        });
        // SAFETY: `raw` is at its final (heap) address and not yet in use.
        unsafe {
            sys::mutex_init(
                m.raw.get(),
                core::ptr::null(),
                sys::MUTEX_DRIVER,
                core::ptr::null_mut(),
            )
        };
        m
    }

    /// Block until the mutex is ours.
    pub fn lock(&self) -> KMutexGuard<'_, T> {
        // SAFETY: initialised by `new`; destroyed only in `drop`.
        unsafe { sys::mutex_enter(self.raw.get()) };
        KMutexGuard { m: self }
    }
}

impl<T> Drop for KMutex<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: nobody holds or waits for the mutex.
        unsafe { sys::mutex_destroy(self.raw.get()) }
    }
}

pub struct KMutexGuard<'a, T> {
    m: &'a KMutex<T>,
}

impl<T> Deref for KMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: we hold the mutex.
        unsafe { &*self.m.data.get() }
    }
}

impl<T> DerefMut for KMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: we hold the mutex, so this is the only reference.
        unsafe { &mut *self.m.data.get() }
    }
}

impl<T> Drop for KMutexGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: entered in `lock`.
        unsafe { sys::mutex_exit(self.m.raw.get()) }
    }
}
