/* Links against an installed libmoeq and checks the loaded version. */
#include <moeq/moeq.h>
#include <stdio.h>

int main(void) {
  printf("%s\n", moeq_build_info());
  return moeq_version() == MOEQ_VERSION_NUMBER ? 0 : 1;
}
