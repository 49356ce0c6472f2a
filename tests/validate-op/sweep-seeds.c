/* The validator's unit test as the seed source of sweep-cpu.c: its legit nodes reach
 * vgpu_seed_hook, its main becomes vgpu_validate_op_tests_main. */
#define VGPU_SEED_HOOK 1
#define main vgpu_validate_op_tests_main
int vgpu_validate_op_tests_main(void);
#include "../unit/test-validate-op.c"
