// The exception a failed moeq call throws: the status and the library's message.
package org.moeq;

import org.moeq.jni.Abi;
import org.moeq.jni.moeq_status_code;

/**
 * A moeq call failed: {@link #statusName()} says how (e.g. {@code MOEQ_ERR_INVALID_ARGUMENT}),
 * {@link #detail()} is the library's message, which names the argument and what was expected of
 * it ({@code "x: expected 128 columns (K of weight), got 64"}).
 *
 * <p>Unchecked, like {@link IllegalArgumentException}: almost every failure is a wrong shape, dtype
 * or device, a mistake in the calling code rather than a condition to recover from, and the rest
 * (no GPU, unsupported path) can be asked about up front ({@link Moeq#cudaAvailable()}). A checked
 * exception would only add catch blocks around every try-with-resources block of tensors.
 */
public final class MoeqException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final int status;
  private final String statusName;
  private final String detail;

  MoeqException(int status, String detail) {
    this(status, Abi.moeq_status_name(status), detail);
  }

  private MoeqException(int status, String statusName, String detail) {
    super(statusName + ": " + detail);
    this.status = status;
    this.statusName = statusName;
    this.detail = detail;
  }

  /** Throws the library's error for a status other than {@code MOEQ_OK}. */
  static void check(int status) {
    if (status != moeq_status_code.MOEQ_OK) {
      throw new MoeqException(status, Abi.moeq_last_error());
    }
  }

  /** An argument the Java layer rejects before calling the library, in the library's words. */
  static MoeqException invalidArgument(String argument, String expectation) {
    return new MoeqException(moeq_status_code.MOEQ_ERR_INVALID_ARGUMENT, argument + ": " + expectation);
  }

  /** The {@code moeq_status} code, a {@code moeq_status_code} constant. */
  public int status() {
    return status;
  }

  /** {@code "MOEQ_ERR_INVALID_ARGUMENT"}, {@code "MOEQ_ERR_UNSUPPORTED"}, ... */
  public String statusName() {
    return statusName;
  }

  /** The message without the status name: {@code "argument: expectation"}. */
  public String detail() {
    return detail;
  }
}
