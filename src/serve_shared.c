/*
 * serve_shared.c - one copy per server of the models being served (see
 * serve_shared.h)
 *
 * A shared copy is one dynamic shared memory segment: a SharedHeader, then
 * the arrays of a ServeModel at MAXALIGNed offsets (ids, the seen CSR,
 * popularity) and the scorer's state (Scorer.state_write).  A backend maps
 * it and builds a small local ServeModel whose pointers lead into the
 * mapping; the mapping is released when that local entry is freed (a
 * callback of its memory context).  Segments are pinned while listed and
 * unpinned when evicted, so an evicted copy goes away with its last mapping.
 */
#include "postgres.h"

#include <sys/mman.h>

#include "access/xact.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "funcapi.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/elog.h"

#include "serve_shared.h"

typedef struct SharedSlot
{
	bool		used;
	int64		model_id;
	TransactionId xmin;
	uint32		name_hash;		/* older versions of a name are evicted */
	dsm_handle	handle;
	Size		bytes;
	pg_atomic_uint64 last_used;
} SharedSlot;

typedef struct SharedDir
{
	LWLock	   *lock;
	pg_atomic_uint64 clock;
	SharedSlot	slots[SERVE_SHARED_SLOTS];
} SharedDir;

/* a shared copy: this header, then the arrays at these offsets */
typedef struct SharedHeader
{
	int64		model_id;
	TransactionId xmin;
	int			dim;
	int			user_dim;
	int			n_users;
	int			n_items;
	int64		n_seen;
	Size		off_user_ids;
	Size		off_item_ids;
	Size		off_seen_ptr;
	Size		off_seen_idx;
	Size		off_popularity;
	Size		off_pop_order;
	Size		off_state;
} SharedHeader;

#define TRANCHE "dsl_rec serving"

static int	shared_mb = 1024;
static SharedDir *dir = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
shared_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(SharedDir)));
	RequestNamedLWLockTranche(TRANCHE, 1);
}

static void
shared_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	dir = ShmemInitStruct("dsl_rec serving directory", sizeof(SharedDir), &found);
	if (!found)
	{
		memset(dir, 0, sizeof(SharedDir));
		dir->lock = &(GetNamedLWLockTranche(TRANCHE))->lock;
		pg_atomic_init_u64(&dir->clock, 0);
		for (int s = 0; s < SERVE_SHARED_SLOTS; s++)
			pg_atomic_init_u64(&dir->slots[s].last_used, 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

void
serve_shared_init(void)
{
	DefineCustomIntVariable("dsl_rec.serving_shared_memory",
							"Shared memory for the one copy per server of served models.",
							"Needs dsl_rec in shared_preload_libraries; 0 keeps a copy per connection.",
							&shared_mb,
							1024, 0, 1024 * 1024,
							PGC_SIGHUP,
							GUC_UNIT_MB,
							NULL, NULL, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shared_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shared_startup;
}

bool
serve_shared_enabled(void)
{
	return dir != NULL && shared_mb > 0;
}

/*
 * A backend maps a segment once (dsm_attach refuses a second time), but
 * several local entries may use it (one per role): the mappings this
 * backend holds, with how many entries use each.
 */
#define MAX_MAPPINGS 16
static struct
{
	dsm_segment *seg;
	int			refs;
}			mappings[MAX_MAPPINGS];

static void
mapping_ref(dsm_segment *seg)
{
	int			free_m = -1;

	for (int i = 0; i < MAX_MAPPINGS; i++)
	{
		if (mappings[i].seg == seg)
		{
			mappings[i].refs++;
			return;
		}
		if (mappings[i].seg == NULL && free_m < 0)
			free_m = i;
	}
	if (free_m < 0)
		elog(ERROR, "too many shared model copies mapped in one backend");
	mappings[free_m].seg = seg;
	mappings[free_m].refs = 1;
}

/* the mapping goes with the last local entry that uses it */
static void
mapping_unref(void *arg)
{
	dsm_segment *seg = (dsm_segment *) arg;

	for (int i = 0; i < MAX_MAPPINGS; i++)
		if (mappings[i].seg == seg && --mappings[i].refs == 0)
		{
			mappings[i].seg = NULL;
			dsm_detach(seg);
		}
}

/* a local ServeModel over the shared copy seg (mapped, mapping pinned) */
static ServeModel *
map_copy(dsm_segment *seg, const Scorer *scorer, MemoryContext parent)
{
	char	   *base = dsm_segment_address(seg);
	const SharedHeader *h = (const SharedHeader *) base;
	MemoryContext cxt = AllocSetContextCreate(parent, "dsl_rec served model (shared)",
											  ALLOCSET_SMALL_SIZES);
	MemoryContextCallback *cb = MemoryContextAlloc(cxt, sizeof(MemoryContextCallback));
	ServeModel *m;

	mapping_ref(seg);
	cb->func = mapping_unref;
	cb->arg = seg;
	MemoryContextRegisterResetCallback(cxt, cb);

	m = MemoryContextAllocZero(cxt, sizeof(ServeModel));
	m->cxt = cxt;
	m->model_id = h->model_id;
	m->row_xmin = h->xmin;
	m->scorer = scorer;
	m->dim = h->dim;
	m->user_dim = h->user_dim;
	m->n_users = h->n_users;
	m->n_items = h->n_items;
	m->user_ids = (int64 *) (base + h->off_user_ids);
	m->item_ids = (int64 *) (base + h->off_item_ids);
	m->seen.n_rows = h->n_users;
	m->seen.ptr = (const int64 *) (base + h->off_seen_ptr);
	m->seen.idx = (const int32 *) (base + h->off_seen_idx);
	m->popularity = (int32 *) (base + h->off_popularity);
	m->pop_order = (int32 *) (base + h->off_pop_order);
	m->shared_bytes = dsm_segment_map_length(seg);
	scorer->state_attach(m, base + h->off_state);
	return m;
}

ServeModel *
serve_shared_attach(int64 model_id, TransactionId xmin, const Scorer *scorer,
					MemoryContext parent)
{
	dsm_segment *seg = NULL;

	if (!serve_shared_enabled() || scorer->state_attach == NULL)
		return NULL;
	/* attached under the lock, so the copy cannot be evicted meanwhile */
	LWLockAcquire(dir->lock, LW_SHARED);
	for (int s = 0; s < SERVE_SHARED_SLOTS; s++)
	{
		SharedSlot *slot = &dir->slots[s];

		if (slot->used && slot->model_id == model_id && slot->xmin == xmin)
		{
			/* mapped already for another role's entry, or mapped now */
			seg = dsm_find_mapping(slot->handle);
			if (seg == NULL && (seg = dsm_attach(slot->handle)) != NULL)
				dsm_pin_mapping(seg);
			if (seg != NULL)
				pg_atomic_write_u64(&slot->last_used,
									pg_atomic_add_fetch_u64(&dir->clock, 1));
			break;
		}
	}
	LWLockRelease(dir->lock);
	if (seg == NULL)
		return NULL;
	return map_copy(seg, scorer, parent);
}

/* drop slot s from the directory (exclusive lock held) */
static void
evict(int s)
{
	dir->slots[s].used = false;
	dsm_unpin_segment(dir->slots[s].handle);
}

/* array sizes of a shared copy of m, and their offsets */
static Size
layout(const ServeModel *m, SharedHeader *h)
{
	Size		off = MAXALIGN(sizeof(SharedHeader));

	h->off_user_ids = off;
	off += MAXALIGN(sizeof(int64) * m->n_users);
	h->off_item_ids = off;
	off += MAXALIGN(sizeof(int64) * m->n_items);
	h->off_seen_ptr = off;
	off += MAXALIGN(sizeof(int64) * (m->n_users + 1));
	h->off_seen_idx = off;
	off += MAXALIGN(sizeof(int32) * m->seen.ptr[m->n_users]);
	h->off_popularity = off;
	off += MAXALIGN(sizeof(int32) * m->n_items);
	h->off_pop_order = off;
	off += MAXALIGN(sizeof(int32) * m->n_items);
	h->off_state = off;
	off += MAXALIGN(m->scorer->state_bytes(m));
	return off;
}

/*
 * A new segment of size bytes, its mapping pinned, or NULL.  Creating one
 * can fail where dynamic shared memory is small (a container's 64 MB
 * /dev/shm): that is a WARNING and the model is served per backend, not an
 * error of the serving call.  The attempt runs in a subtransaction so that
 * the error can be caught safely.
 */
static dsm_segment *
create_segment(Size size, const char *name)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	dsm_segment *volatile seg = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		seg = dsm_create(size, DSM_CREATE_NULL_IF_MAXSEGMENTS);
		if (seg != NULL)
		{
			dsm_pin_mapping(seg);	/* outlives the subtransaction */
#ifdef MADV_POPULATE_WRITE
			/* it is written in full next: map every page in one call, not by faults */
			(void) madvise(dsm_segment_address(seg), dsm_segment_map_length(seg),
						   MADV_POPULATE_WRITE);
#endif
		}
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		ereport(WARNING,
				(errmsg("could not share model \"%s\" (%zu bytes): %s", name, size, edata->message),
				 errdetail("This connection serves it from a copy of its own."),
				 errhint("Dynamic shared memory is limited by dynamic_shared_memory_type and, with \"posix\", by the size of /dev/shm.")));
		FreeErrorData(edata);
		seg = NULL;
	}
	PG_END_TRY();
	return seg;
}

ServeModel *
serve_shared_publish(const ServeModel *m, const char *name, MemoryContext parent)
{
	SharedHeader h;
	Size		total;
	Size		limit = (Size) shared_mb * 1024 * 1024;
	uint32		name_hash;
	dsm_segment *seg;
	char	   *base;
	bool		listed = false;
	bool		exists = false;

	if (!serve_shared_enabled() || m->scorer->state_bytes == NULL)
		return NULL;
	/* a version this transaction wrote is nobody else's to see */
	if (TransactionIdIsCurrentTransactionId(m->row_xmin))
		return NULL;

	memset(&h, 0, sizeof(h));
	total = layout(m, &h);
	if (total > limit)
		return NULL;
	h.model_id = m->model_id;
	h.xmin = m->row_xmin;
	h.dim = m->dim;
	h.user_dim = m->user_dim;
	h.n_users = m->n_users;
	h.n_items = m->n_items;
	h.n_seen = m->seen.ptr[m->n_users];

	seg = create_segment(total, name);
	if (seg == NULL)
		return NULL;
	base = dsm_segment_address(seg);
	memcpy(base, &h, sizeof(h));
	memcpy(base + h.off_user_ids, m->user_ids, sizeof(int64) * m->n_users);
	memcpy(base + h.off_item_ids, m->item_ids, sizeof(int64) * m->n_items);
	memcpy(base + h.off_seen_ptr, m->seen.ptr, sizeof(int64) * (m->n_users + 1));
	memcpy(base + h.off_seen_idx, m->seen.idx, sizeof(int32) * h.n_seen);
	memcpy(base + h.off_popularity, m->popularity, sizeof(int32) * m->n_items);
	memcpy(base + h.off_pop_order, m->pop_order, sizeof(int32) * m->n_items);
	m->scorer->state_write(m, base + h.off_state);

	name_hash = hash_bytes((const unsigned char *) name, (int) strlen(name));
	LWLockAcquire(dir->lock, LW_EXCLUSIVE);
	for (int s = 0; s < SERVE_SHARED_SLOTS; s++)
	{
		SharedSlot *slot = &dir->slots[s];

		if (!slot->used)
			continue;
		if (slot->model_id == m->model_id && slot->xmin == m->row_xmin)
			exists = true;		/* another backend was quicker */
		else if (slot->name_hash == name_hash &&
				 (slot->model_id < m->model_id ||
				  (slot->model_id == m->model_id &&
				   TransactionIdPrecedes(slot->xmin, m->row_xmin))))
			evict(s);			/* an older version of the name */
	}
	if (!exists)
	{
		for (;;)
		{
			Size		used = 0;
			int			free_slot = -1;
			int			lru = -1;

			for (int s = 0; s < SERVE_SHARED_SLOTS; s++)
			{
				SharedSlot *slot = &dir->slots[s];

				if (!slot->used)
				{
					if (free_slot < 0)
						free_slot = s;
					continue;
				}
				used += slot->bytes;
				if (lru < 0 || pg_atomic_read_u64(&slot->last_used) <
					pg_atomic_read_u64(&dir->slots[lru].last_used))
					lru = s;
			}
			if (free_slot >= 0 && used + total <= limit)
			{
				SharedSlot *slot = &dir->slots[free_slot];

				dsm_pin_segment(seg);
				slot->model_id = m->model_id;
				slot->xmin = m->row_xmin;
				slot->name_hash = name_hash;
				slot->handle = dsm_segment_handle(seg);
				slot->bytes = total;
				pg_atomic_write_u64(&slot->last_used,
									pg_atomic_add_fetch_u64(&dir->clock, 1));
				slot->used = true;
				listed = true;
				break;
			}
			if (lru < 0)
				break;			/* cannot happen: total <= limit */
			evict(lru);
		}
	}
	LWLockRelease(dir->lock);

	if (!listed)
	{
		dsm_detach(seg);
		return exists ? serve_shared_attach(m->model_id, m->row_xmin, m->scorer, parent) : NULL;
	}
	return map_copy(seg, m->scorer, parent);
}

void
serve_shared_note_local(const char *name)
{
	static bool noted = false;

	if (dir != NULL || noted)
		return;
	noted = true;
	ereport(NOTICE,
			(errmsg("dsl_rec is not in shared_preload_libraries: this connection keeps its own copy of model \"%s\"",
					name),
			 errhint("With shared_preload_libraries = 'dsl_rec', every connection of the server shares one copy of a served model.")));
}

/*
 * dsl.serving_shared(): the server's shared copies, most recently used
 * first (model_id and bytes; nothing without the preload).  Restricted to
 * pg_monitor by the install script: it lists models the caller may not see.
 */
PG_FUNCTION_INFO_V1(dsl_serving_shared);
Datum
dsl_serving_shared(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SharedSlot	copy[SERVE_SHARED_SLOTS];
	uint64		used[SERVE_SHARED_SLOTS];
	int			order[SERVE_SHARED_SLOTS];
	int			n = 0;

	InitMaterializedSRF(fcinfo, 0);
	if (dir == NULL)
		return (Datum) 0;
	LWLockAcquire(dir->lock, LW_SHARED);
	for (int s = 0; s < SERVE_SHARED_SLOTS; s++)
		if (dir->slots[s].used)
		{
			copy[n] = dir->slots[s];
			used[n] = pg_atomic_read_u64(&dir->slots[s].last_used);
			order[n] = n;
			n++;
		}
	LWLockRelease(dir->lock);
	for (int a = 1; a < n; a++)
		for (int b = a; b > 0 && used[order[b]] > used[order[b - 1]]; b--)
		{
			int			t = order[b];

			order[b] = order[b - 1];
			order[b - 1] = t;
		}
	for (int j = 0; j < n; j++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = Int64GetDatum(copy[order[j]].model_id);
		values[1] = Int64GetDatum((int64) copy[order[j]].bytes);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
