// Keeps the tensors of one native call alive until it returns.
package org.moeq;

import java.util.ArrayList;
import java.util.List;
import org.moeq.jni.DLTensor;
import org.moeq.jni.moeq_qtensor;

/** Used as {@code try (CallScope call = new CallScope()) { ... call.tensor(x, "x") ... }}. */
final class CallScope implements AutoCloseable {
  private final List<Lifetime> entered = new ArrayList<>();

  /** The native view of {@code tensor} (null stays null: the library names a missing argument). */
  DLTensor tensor(Tensor tensor, String name) {
    if (tensor == null) {
      return null;
    }
    enter(tensor.lifetime, name);
    return tensor.view;
  }

  /** Like {@link #tensor}, for a tensor the call writes: a read-only view is refused. */
  DLTensor output(Tensor tensor, String name) {
    DLTensor view = tensor(tensor, name);
    if (view != null && tensor.readOnly) {
      throw MoeqException.invalidArgument(
          name, "expected a writable tensor, got a view of a read-only buffer");
    }
    return view;
  }

  /** The native descriptor of {@code qtensor}, with every buffer it points at held alive. */
  moeq_qtensor qtensor(QTensor qtensor, String name) {
    if (qtensor == null) {
      return null;
    }
    enter(qtensor.lifetime, name);
    qtensor.forEachPart((part, partName) -> tensor(part, name + "." + partName));
    return qtensor.struct;
  }

  private void enter(Lifetime lifetime, String name) {
    lifetime.enter(name);
    entered.add(lifetime);
  }

  @Override
  public void close() {
    entered.forEach(Lifetime::exit);
  }
}
