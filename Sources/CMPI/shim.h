// MPI for the `MPI` package trait (OpenMPI or MPICH, found through pkg-config's `mpi`).
// The handles MPI defines as macros (a cast address in OpenMPI, an integer in MPICH) are not visible to Swift;
// these one-line functions return them.
#include <mpi.h>

static inline MPI_Comm tandem_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm tandem_mpi_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Group tandem_mpi_group_null(void) { return MPI_GROUP_NULL; }
static inline MPI_Request tandem_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Op tandem_mpi_op_null(void) { return MPI_OP_NULL; }
static inline MPI_Errhandler tandem_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Status *tandem_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Status *tandem_mpi_statuses_ignore(void) { return MPI_STATUSES_IGNORE; }
static inline void *tandem_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline int tandem_mpi_any_tag(void) { return MPI_ANY_TAG; }

static inline MPI_Datatype tandem_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype tandem_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype tandem_mpi_int8(void) { return MPI_INT8_T; }
static inline MPI_Datatype tandem_mpi_int32(void) { return MPI_INT32_T; }
static inline MPI_Datatype tandem_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype tandem_mpi_uint16(void) { return MPI_UINT16_T; }

static inline MPI_Op tandem_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op tandem_mpi_min(void) { return MPI_MIN; }
static inline MPI_Op tandem_mpi_max(void) { return MPI_MAX; }
static inline MPI_Op tandem_mpi_prod(void) { return MPI_PROD; }
