/*
 * model_ops.h - what a model type provides to dsl.train() and to serving
 *
 * train*.c own the shared arguments, the DSL engine, validation, the
 * stopping rule and storage; a model type owns its options, its parameter
 * tensors (registered with the engine), its training step, how serving
 * embeddings derive from its parameters, and its scorer: how a stored model
 * of the type is loaded and scored when served (scorer.h).
 *
 * Adding a model type means writing one file, src/<type>.c, that defines
 *
 *   - an options struct of its own, with defaults (init_options), parsing
 *     and validation of each key of dsl.train's options jsonb (set_option,
 *     errors through ereport naming the key and the bad value), defaults
 *     that depend on the data (finish_options) and its part of the
 *     hyperparameters JSON (write_hyperparams: ", \"key\": value" pairs);
 *   - its defaults for batch_size (default_batch_size) and update_interval
 *     (default_interval_epochs);
 *   - the shapes of the tensors it will register (tensor_shapes) and the
 *     bytes of its own temporaries (work_bytes), for the memory budget;
 *   - create / train_epoch / serving (see below), usually on top of the
 *     shared BPR layer (bpr.h);
 *   - tensor_parts: which of its tensors are stored under which
 *     dsl.parameters part name, keyed by user ids, item ids or its own row
 *     numbers 0..n-1;
 *   - its scorer: &dot_scorer when its score is the inner product of the
 *     stored 'user' and 'item' rows (MF, LightGCN); otherwise a Scorer of
 *     its own (scorer.h) in src/scorer_<type>.c that loads its parts and
 *     scores (NeuMF's MLP), declared in scorer.h, possibly built on the
 *     inner-product one (MultVAE's adds its encoder: dot_scorer_extra);
 *   - one const ModelOps, declared extern below,
 *
 * and adding one line to the list in model_registry.c.  Its tests go to
 * sql/<type>*.sql and its documentation to docs/<type>.md.
 */
#ifndef DSL_MODEL_OPS_H
#define DSL_MODEL_OPS_H

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

#include "dsl_engine.h"
#include "interactions.h"
#include "model.h"
#include "topk.h"

/* the most reg values a model type tries under the stopping rule */
#define DSL_MAX_REG_CHOICES 4

/* what the rows of a stored tensor are, i.e. its dsl.parameters entity_id */
typedef enum StoredRows
{
	ROWS_USERS,					/* row r is user d->user_ids[r] */
	ROWS_ITEMS,					/* row r is item d->item_ids[r] */
	ROWS_OWN					/* the model's own rows, entity_id r */
} StoredRows;

/* a parameter tensor stored under a part name of its own */
typedef struct StoredTensor
{
	const char *part;			/* dsl.parameters.part, or NULL: not stored */
	StoredRows	rows;
} StoredTensor;

/* the settings every model type sees, resolved before create */
typedef struct TrainParams
{
	int			dim;
	int			batch_size;		/* resolved: never 0 */
	double		reg;
	uint64		seed;
	int64		steps_per_epoch;	/* set once batch_size is known */
	int64		update_interval;	/* optimizer steps between DSL rounds */
	const void *options;		/* the model type's own options struct */
} TrainParams;

typedef struct ModelOps
{
	const char *type;			/* model_type in SQL */
	const char *option_keys;	/* its option keys, for messages ("" if none) */
	const char *shape_keys;		/* those that shape its tensors: a
								 * continuation keeps the stored model's */
	Size		options_size;	/* sizeof its options struct */
	int			default_dim;	/* dim NULL: this width of the stored rows */
	int			min_dim;		/* the smallest dim it accepts */
	int			default_interval_epochs;	/* update_interval NULL: this many
											 * epochs' steps between rounds */
	double		default_lr;		/* lr NULL: Adam's starting learning rate */
	double		default_reg;	/* reg NULL: the L2 coefficient */

	/*
	 * Under the stopping rule (epochs NULL) a sparse model is not stopped
	 * before a schedule of this many epochs; 0: DSL_AUTO_SPARSE_MIN_EPOCHS
	 * (train.c)
	 */
	int			sparse_min_epochs;

	/*
	 * The same for a dense model (density 1); 0: none, the 2 % rule alone
	 * decides
	 */
	int			dense_min_epochs;

	/*
	 * reg NULL under the stopping rule (epochs NULL): when n_reg_choices >
	 * 1, each of these is trained over the first schedule; the first is
	 * default_reg, kept unless another's validation recall is 5 % better
	 * (train.c, choose_reg).
	 */
	int			n_reg_choices;
	double		reg_choices[DSL_MAX_REG_CHOICES];

	/* fill the options struct with the defaults */
	void		(*init_options) (void *opts);

	/*
	 * Set one option from dsl.train's options jsonb; false if the key is not
	 * one of ours.  Bad values are reported with ereport.
	 */
	bool		(*set_option) (void *opts, const char *key, const JsonbValue *value);

	/* defaults that depend on p (steps_per_epoch, interval), or NULL */
	void		(*finish_options) (void *opts, const TrainParams *p);

	/* append its hyperparameters: ", \"key\": value" pairs */
	void		(*write_hyperparams) (StringInfo s, const void *opts);

	/* batch_size NULL: pairs per optimizer step for these training pairs */
	int			(*default_batch_size) (const Interactions *d);

	int64		(*steps_per_epoch) (const Interactions *d, const TrainParams *p);

	/*
	 * The shapes of the tensors create will register, in registration order
	 * (at most DSL_MAX_TENSORS); returns their number.
	 */
	int			(*tensor_shapes) (const Interactions *d, const TrainParams *p,
								  TensorShape *shapes);

	/* bytes of per-step temporaries and bookkeeping, for the memory budget */
	Size		(*work_bytes) (const Interactions *d, const TrainParams *p);

	/* register tensors with the engine and set up training state */
	void	   *(*create) (DslEngine *e, const Interactions *d, const TrainParams *p);

	/* one epoch; returns the mean loss (NaN/Inf when training diverged) */
	double		(*train_epoch) (void *state);

	/*
	 * Change the L2 coefficient from the next step on, or NULL.  With reg
	 * NULL under the stopping rule, a doubled schedule that did not pay is
	 * followed by one more with half the reg, kept only if it pays
	 * (train.c, halve_reg; docs/training.md).
	 */
	void		(*set_reg) (void *state, double reg);

	/*
	 * Serving embeddings (what recommend ranks with) computed from the given
	 * parameter tensors, which are the live ones or a best-epoch snapshot in
	 * the engine's registration order.  The sources stay valid until the
	 * next call or the end of training.
	 */
	void		(*serving) (void *state, SparseTensor *const *tensors,
							EmbeddingSource *users, EmbeddingSource *items);

	/*
	 * Validation when the score is not the inner product of the serving
	 * rows (NeuMF), else NULL: rank users[0..n_users) against every item
	 * with the given tensors (the live ones or a best-epoch snapshot) as the
	 * stored model would be served, skipping exclude's row of the user, and
	 * emit each user's k best, best first, from the backend, within about
	 * mem_bytes.
	 */
	void		(*rank_users) (void *state, SparseTensor *const *tensors,
							   const int32 *users, int n_users,
							   const IndexCSR *exclude, int k, Size mem_bytes,
							   TopKEmit emit, void *emit_arg);

	/*
	 * How the tensors themselves are stored, in registration order, or NULL
	 * when the serving rows ('user'/'item') already are the parameters (MF:
	 * then they are stored exactly, active entries only).  A tensor whose
	 * part is 'user' or 'item' is that serving part, stored exactly
	 * (MultVAE's output layer is its item rows).
	 */
	const StoredTensor *tensor_parts;

	/*
	 * How a stored model of this type is served: loading its parts from
	 * dsl.parameters and scoring (scorer.h).  Every type whose score is the
	 * inner product of its 'user' and 'item' rows uses &dot_scorer.
	 */
	const struct Scorer *scorer;
} ModelOps;

/* the model types (model_registry.c) */
extern const ModelOps mf_ops;
extern const ModelOps lightgcn_ops;
extern const ModelOps multvae_ops;
extern const ModelOps neumf_ops;

/*
 * The ModelOps of model_type `type`; an unknown type is an error naming it
 * and listing the registered types.
 */
extern const ModelOps *dsl_model_type_lookup(const char *type);

/* The ModelOps of model_type `type`, or NULL when there is none. */
extern const ModelOps *dsl_model_type_find(const char *type);

/* shared option parsers for set_option: ereport unless v is such a number */
extern double dsl_option_float(const char *key, const JsonbValue *v);
extern double dsl_option_number(const char *key, const JsonbValue *v,
								double lo, bool lo_incl, double hi, bool hi_incl,
								const char *valid);
extern int	dsl_option_int(const char *key, const JsonbValue *v, int lo, int hi);

#endif							/* DSL_MODEL_OPS_H */
