# Fails unless README.md shows tests/readme_example.c verbatim in a ```c block.
file(READ ${README} readme)
file(READ ${EXAMPLE} example)
string(FIND "${readme}" "```c\n${example}```" position)
if(position EQUAL -1)
  message(FATAL_ERROR "README.md does not contain tests/readme_example.c verbatim in a ```c block")
endif()
