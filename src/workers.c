/*
 * workers.c - worker thread pool (see workers.h for the rules)
 */
#include "postgres.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include "utils/memutils.h"

#include "workers.h"

#define MAX_WORKERS 64

typedef struct WorkerStart
{
	struct WorkerPool *pool;
	int			part;
} WorkerStart;

/*
 * Jobs are short (a part of one mini-batch step), so idle workers spin a
 * little (some microseconds) on the generation counter before sleeping on the condition
 * variable, and the caller spins on the pending count.
 */
#define SPIN_ROUNDS 2000

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#else
#define cpu_relax() ((void) 0)
#endif

struct WorkerPool
{
	int			n_threads;
	WorkerStart starts[MAX_WORKERS];
	pthread_t	threads[MAX_WORKERS];
	int			started;
	pthread_mutex_t lock;
	pthread_cond_t go;
	uint64		generation;		/* bumped for every job */
	int			pending;		/* workers still running the current job */
	bool		quit;
	WorkerFn	fn;
	void	   *arg;
	MemoryContextCallback cb;
};

static void *
worker_main(void *p)
{
	WorkerStart *ws = (WorkerStart *) p;
	WorkerPool *pool = ws->pool;
	int			part = ws->part;
	uint64		seen = 0;

	for (;;)
	{
		WorkerFn	fn;
		void	   *arg;

		for (int spin = 0; spin < SPIN_ROUNDS; spin++)
		{
			if (__atomic_load_n(&pool->generation, __ATOMIC_ACQUIRE) != seen ||
				__atomic_load_n(&pool->quit, __ATOMIC_ACQUIRE))
				break;
			cpu_relax();
		}
		pthread_mutex_lock(&pool->lock);
		while (!pool->quit && pool->generation == seen)
			pthread_cond_wait(&pool->go, &pool->lock);
		if (pool->quit)
		{
			pthread_mutex_unlock(&pool->lock);
			return NULL;
		}
		seen = pool->generation;
		fn = pool->fn;
		arg = pool->arg;
		pthread_mutex_unlock(&pool->lock);

		fn(arg, part, pool->n_threads);

		__atomic_sub_fetch(&pool->pending, 1, __ATOMIC_ACQ_REL);
	}
}

static void
worker_pool_shutdown(void *p)
{
	WorkerPool *pool = (WorkerPool *) p;

	pthread_mutex_lock(&pool->lock);
	pool->quit = true;
	pthread_cond_broadcast(&pool->go);
	pthread_mutex_unlock(&pool->lock);
	for (int i = 0; i < pool->started; i++)
		pthread_join(pool->threads[i], NULL);
	pool->started = 0;
	pthread_mutex_destroy(&pool->lock);
	pthread_cond_destroy(&pool->go);
}

WorkerPool *
worker_pool_create(int n_threads, MemoryContext owner)
{
	WorkerPool *pool = MemoryContextAllocZero(owner, sizeof(WorkerPool));
	sigset_t	all,
				old;

	n_threads = worker_pool_threads(n_threads);
	pool->n_threads = 1;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->go, NULL);

	/* threads are joined when the owning context goes away, error or not */
	pool->cb.func = worker_pool_shutdown;
	pool->cb.arg = pool;
	MemoryContextRegisterResetCallback(owner, &pool->cb);

	/* threads inherit the signal mask: block everything while creating */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int i = 1; i < n_threads; i++)
	{
		pool->starts[i].pool = pool;
		pool->starts[i].part = i;
		if (pthread_create(&pool->threads[pool->started], NULL, worker_main, &pool->starts[i]) != 0)
			break;
		pool->started++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pool->n_threads = pool->started + 1;
	return pool;
}

/* the requested thread count, clamped to what a pool may have */
int
worker_pool_threads(int n_threads)
{
	return Max(1, Min(n_threads, MAX_WORKERS));
}

/* worker_pool_create's one allocation */
Size
worker_pool_bytes(void)
{
	return sizeof(WorkerPool);
}

int
worker_pool_size(const WorkerPool *pool)
{
	return pool->n_threads;
}

void
worker_pool_run(WorkerPool *pool, WorkerFn fn, void *arg)
{
	if (pool->n_threads == 1)
	{
		fn(arg, 0, 1);
		return;
	}
	pthread_mutex_lock(&pool->lock);
	pool->fn = fn;
	pool->arg = arg;
	__atomic_store_n(&pool->pending, pool->n_threads - 1, __ATOMIC_RELEASE);
	__atomic_add_fetch(&pool->generation, 1, __ATOMIC_ACQ_REL);
	pthread_cond_broadcast(&pool->go);
	pthread_mutex_unlock(&pool->lock);

	fn(arg, 0, pool->n_threads);

	for (int spin = 0; __atomic_load_n(&pool->pending, __ATOMIC_ACQUIRE) > 0; spin++)
	{
		if (spin < SPIN_ROUNDS)
			cpu_relax();
		else
			sched_yield();		/* a worker was descheduled: let it run */
	}
}
