/*
 * cpu.h - the one scheme for CPU-specific code paths
 *
 * The library is built for the baseline of its target (no -march=native:
 * packages must run on any x86-64).  A hot kernel that profits from wider
 * SIMD is compiled twice from one body: once as is, once with
 * DSL_TARGET("avx") or DSL_TARGET("avx2,fma") (GCC/Clang function
 * attributes), and a chooser picks one with DSL_CPU_HAS() the first time
 * it is needed, in the backend thread (never in a worker), keeping the
 * choice in a static function pointer.  Both copies must give the same
 * results where that matters (sparse_tensor.c's Adam: no FMA, so no
 * difference; lightgcn.c's propagation: sums of floats, contracted by FMA
 * only where the compiler may).  Off x86, or without GCC builtins, only the
 * baseline copy exists.
 */
#ifndef DSL_CPU_H
#define DSL_CPU_H

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define DSL_X86_DISPATCH 1
#endif

#ifdef DSL_X86_DISPATCH

/* compile the next function for these instruction set extensions */
#define DSL_TARGET(isa) __attribute__((target(isa)))

/* whether the running CPU has a feature (a __builtin_cpu_supports name) */
#define DSL_CPU_HAS(feature) \
	(__builtin_cpu_init(), __builtin_cpu_supports(feature) != 0)

#else

#define DSL_CPU_HAS(feature) false

#endif							/* DSL_X86_DISPATCH */

#endif							/* DSL_CPU_H */
