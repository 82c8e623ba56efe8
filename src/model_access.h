/*
 * model_access.h - the model tables on a Citus cluster
 * (model_access.c): reads from inside a Citus task, and whether they are
 * reference tables
 */
#ifndef MODEL_ACCESS_H
#define MODEL_ACCESS_H

extern int	model_tables_read_begin(void);
extern void model_tables_read_end(int level);
extern int	model_tables_write_begin(bool *distributed);

#endif
