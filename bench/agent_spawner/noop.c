/* The storm's exec target: a static binary that exits at once (no dynamic loader, no libc). */
void _start(void) { __asm__ volatile("mov $60, %eax\n xor %edi, %edi\n syscall"); }
