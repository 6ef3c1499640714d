# Writes the .java files SWIG generated in SOURCE_DIR to LIST_FILE, one per line,
# for javac's @file argument (their names depend on moeq.h, not on this build).
file(GLOB sources ${SOURCE_DIR}/*.java)
list(JOIN sources "\n" lines)
file(WRITE ${LIST_FILE} "${lines}\n")
