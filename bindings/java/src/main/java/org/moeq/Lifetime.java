// When the native memory of a Tensor or QTensor may be freed: exactly once, after
// its owner closed it (or dropped it) and no call is still using it.
package org.moeq;

import java.lang.ref.Cleaner;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A reference count: one reference for the owner, one per native call in flight. {@code close()}
 * (or the garbage collector, for an owner never closed) gives up the owner's reference; the memory
 * is freed when the count reaches zero, so a tensor closed by another thread while a call reads it
 * is freed only after that call returns. Closing twice is a no-op; using a closed tensor throws.
 */
final class Lifetime {
  private static final Cleaner CLEANER = Cleaner.create();

  private final String what;
  private final AtomicInteger references = new AtomicInteger(1);
  private final Runnable free;
  private final Cleaner.Cleanable ownerReference;
  private volatile boolean closed;

  /**
   * @param owner the Java object whose close() ends the lifetime; {@code free} must not refer to it
   * @param what how error messages call it: "tensor", "quantized tensor"
   */
  Lifetime(Object owner, String what, Runnable free) {
    this.what = what;
    this.free = free;
    this.ownerReference = CLEANER.register(owner, this::releaseOwner);
  }

  /** Gives up the owner's reference; runs at most once (Cleanable's guarantee). */
  void close() {
    ownerReference.clean();
  }

  boolean isClosed() {
    return closed;
  }

  /** Throws if closed; the message starts with the argument name, like the library's. */
  void requireOpen(String name) {
    if (closed) {
      throw closedError(name);
    }
  }

  /** Takes a reference for one native call; fails once the owner has closed. */
  void enter(String name) {
    int count;
    do {
      count = references.get();
      if (closed || count == 0) {
        throw closedError(name);
      }
    } while (!references.compareAndSet(count, count + 1));
    if (closed) { // closed between the check and the increment: back out
      exit();
      throw closedError(name);
    }
  }

  /** Returns the reference {@link #enter} took. */
  void exit() {
    if (references.decrementAndGet() == 0) {
      free.run();
    }
  }

  private IllegalStateException closedError(String name) {
    return new IllegalStateException(name + ": the " + what + " is closed");
  }

  private void releaseOwner() {
    closed = true;
    exit();
  }
}
