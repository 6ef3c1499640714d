// The native library the binding loads, and how its failures reach Java.
package org.moeq;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.moeq.jni.Abi;
import org.moeq.jni.AbiConstants;
import org.moeq.jni.moeq_status_code;

class LibraryTest {
  @Test
  void theLoadedLibraryIsTheVersionTheBindingWasGeneratedFrom() {
    assertEquals(AbiConstants.MOEQ_VERSION_NUMBER, Moeq.versionNumber());
    String version = AbiConstants.MOEQ_VERSION_MAJOR + "." + AbiConstants.MOEQ_VERSION_MINOR + "."
        + AbiConstants.MOEQ_VERSION_PATCH;
    assertTrue(Moeq.buildInfo().contains(version), Moeq.buildInfo());
  }

  @Test
  void aFailureCarriesTheStatusAndTheLibrarysOwnMessage() {
    try (Tensor input = Tensor.copyOf(new float[64], 64)) {
      MoeqException error =
          assertThrows(MoeqException.class, () -> Moeq.quantize(input, Format.NF4, 48, false));
      assertEquals(moeq_status_code.MOEQ_ERR_INVALID_ARGUMENT, error.status());
      assertEquals("MOEQ_ERR_INVALID_ARGUMENT", error.statusName());
      assertEquals(Abi.moeq_last_error(), error.detail());
      assertEquals("MOEQ_ERR_INVALID_ARGUMENT: " + error.detail(), error.getMessage());
    }
  }
}
