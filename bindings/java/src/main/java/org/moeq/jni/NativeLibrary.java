// Loads libmoeq and its JNI glue once: from -Dmoeq.library.path, from a jar on the
// class path, or from java.library.path.
package org.moeq.jni;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Locale;

/** Loads the native libraries behind {@link AbiJNI}; the generated code calls {@link #load()}. */
public final class NativeLibrary {
  /** Directories, separated by {@link File#pathSeparator}, holding the two native libraries. */
  public static final String PATH_PROPERTY = "moeq.library.path";

  // In load order: the glue's dependency on libmoeq (by its SONAME) is then already met.
  private static final String[] LIBRARY_FILES = {
      "libmoeq.so." + AbiConstants.MOEQ_VERSION_MAJOR, "libmoeq_jni.so"};

  private static boolean loaded;

  private NativeLibrary() {}

  /** Loads the libraries on the first call; later calls do nothing. */
  public static synchronized void load() {
    if (loaded) {
      return;
    }
    String directories = System.getProperty(PATH_PROPERTY);
    if (directories != null) {
      loadFromDirectories(directories);
    } else if (!loadFromClassPath()) {
      System.loadLibrary("moeq_jni");
    }
    loaded = true;
  }

  private static void loadFromDirectories(String directories) {
    for (String name : LIBRARY_FILES) {
      System.load(findIn(directories, name).toString());
    }
  }

  private static Path findIn(String directories, String name) {
    for (String directory : directories.split(File.pathSeparator)) {
      Path candidate = Path.of(directory, name);
      if (Files.isRegularFile(candidate)) {
        return candidate.toAbsolutePath();
      }
    }
    throw new UnsatisfiedLinkError(
        PATH_PROPERTY + "=" + directories + ": no " + name + " in any of these directories");
  }

  /** Extracts the libraries packed under org/moeq/native/os-arch/ to a temporary directory. */
  private static boolean loadFromClassPath() {
    String resourceDirectory = "/org/moeq/native/" + platform() + "/";
    if (NativeLibrary.class.getResource(resourceDirectory + LIBRARY_FILES[0]) == null) {
      return false;
    }
    try {
      Path directory = Files.createTempDirectory("moeq-native");
      directory.toFile().deleteOnExit();
      for (String name : LIBRARY_FILES) {
        Path file = directory.resolve(name);
        try (InputStream in = NativeLibrary.class.getResourceAsStream(resourceDirectory + name)) {
          if (in == null) {
            throw new UnsatisfiedLinkError("the jar holds no " + resourceDirectory + name);
          }
          Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
        }
        file.toFile().deleteOnExit();
        System.load(file.toString());
      }
    } catch (IOException e) {
      UnsatisfiedLinkError error =
          new UnsatisfiedLinkError("could not extract the moeq native libraries: " + e.getMessage());
      error.initCause(e);
      throw error;
    }
    return true;
  }

  /** "linux-x86_64", "linux-aarch64": the names CMake gives the natives jar. */
  private static String platform() {
    String os = System.getProperty("os.name").toLowerCase(Locale.ROOT).replace(" ", "");
    String arch = System.getProperty("os.arch").toLowerCase(Locale.ROOT);
    return os + "-" + (arch.equals("amd64") ? "x86_64" : arch);
  }
}
