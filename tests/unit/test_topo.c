/*
 * test_topo.c - unit tests of thread placement (topo.h) on synthetic hwloc
 * topologies, so that the results do not depend on the machine.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <hwloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topo.h"

#include "testutil.h"

static hwloc_topology_t load_synth(const char *desc)
{
    hwloc_topology_t t;
    if (hwloc_topology_init(&t) < 0) return NULL;
    if (hwloc_topology_set_synthetic(t, desc) < 0 || hwloc_topology_load(t) < 0) {
        hwloc_topology_destroy(t);
        return NULL;
    }
    return t;
}

/* The PU with OS index i (synthetic topologies number PUs 0..n-1). */
static hwloc_obj_t pu(hwloc_topology_t t, unsigned os)
{
    return hwloc_get_pu_obj_by_os_index(t, os);
}

/* Builds a cpuset from a list of PU OS indexes, terminated by -1. */
static hwloc_bitmap_t set_of(const int *pus)
{
    hwloc_bitmap_t s = hwloc_bitmap_alloc();
    for (; *pus >= 0; pus++)
        hwloc_bitmap_set(s, (unsigned)*pus);
    return s;
}

/* The "core" objects the plan is expected to use: the cores of the topology,
 * or its PUs when it has no Core objects. */
static hwloc_obj_type_t unit_type(hwloc_topology_t t)
{
    return hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU;
}

/* Independent list of units (logical indexes, increasing) that hold at least
 * one PU of `allowed`: walk the PUs of allowed and take each one's ancestor. */
static int expected_units(hwloc_topology_t t, hwloc_const_cpuset_t allowed, int *out, int max)
{
    hwloc_obj_type_t ut = unit_type(t);
    int total = hwloc_get_nbobjs_by_type(t, ut);
    char *seen = calloc((size_t)total + 1, 1);
    int i;
    hwloc_bitmap_foreach_begin(i, allowed)
    {
        hwloc_obj_t p = hwloc_get_pu_obj_by_os_index(t, (unsigned)i);
        if (!p) continue;
        hwloc_obj_t u = ut == HWLOC_OBJ_PU ? p : hwloc_get_ancestor_obj_by_type(t, ut, p);
        if (u) seen[u->logical_index] = 1;
    }
    hwloc_bitmap_foreach_end();
    int n = 0;
    for (int k = 0; k < total && n < max; k++)
        if (seen[k]) out[n++] = k;
    free(seen);
    return n;
}

/* Checks every property of a plan; returns the number of failed checks. */
static int check_plan(hwloc_topology_t t, hwloc_const_cpuset_t allowed, int req, int bind,
                      const mpm_placement_t *pl)
{
    int fails = 0;
#define EXPECT(c)                                                                                  \
    do {                                                                                           \
        CU_ASSERT(c);                                                                              \
        if (!(c)) fails++;                                                                         \
    } while (0)
    int units[256];
    int nu = expected_units(t, allowed, units, 256);
    int nthreads = req > 0 ? req : nu;
    EXPECT(pl->ncores == nu);
    EXPECT(pl->nthreads == nthreads);
    EXPECT(pl->oversubscribed == (nthreads > nu));
    EXPECT(pl->bind == bind);
    EXPECT(pl->allowed && hwloc_bitmap_isequal(pl->allowed, allowed));
    EXPECT(pl->cpusets != NULL && pl->core_index != NULL);
    if (!pl->cpusets || !pl->core_index || pl->ncores != nu) return fails + 1;
    hwloc_obj_type_t ut = unit_type(t);
    for (int i = 0; i < pl->nthreads; i++) {
        hwloc_const_bitmap_t c = pl->cpusets[i];
        EXPECT(c != NULL);
        if (!c) continue;
        EXPECT(!hwloc_bitmap_iszero(c));
        EXPECT(hwloc_bitmap_isincluded(c, allowed));
        if (!bind) {
            EXPECT(hwloc_bitmap_isequal(c, allowed));
            EXPECT(pl->core_index[i] == -1);
            continue;
        }
        /* Round robin over the units in logical order. */
        int want = units[i % nu];
        EXPECT(pl->core_index[i] == want);
        hwloc_obj_t u = hwloc_get_obj_by_type(t, ut, (unsigned)want);
        EXPECT(u != NULL);
        if (!u) continue;
        EXPECT(hwloc_bitmap_isincluded(c, u->cpuset));
        /* Exactly the PUs of that unit that are allowed. */
        hwloc_bitmap_t x = hwloc_bitmap_alloc();
        hwloc_bitmap_and(x, u->cpuset, allowed);
        EXPECT(hwloc_bitmap_isequal(c, x));
        hwloc_bitmap_free(x);
        /* Threads i and j < ncores are on different units. */
        for (int j = 0; j < i && i < nu; j++)
            EXPECT(pl->core_index[j] != pl->core_index[i]);
    }
#undef EXPECT
    return fails;
}

static void run_case(hwloc_topology_t t, const int *pus, int req, int bind)
{
    hwloc_bitmap_t allowed = set_of(pus);
    mpm_placement_t pl;
    int rc = mpm__topo_plan(t, allowed, req, bind, &pl);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc == 0) {
        int f = check_plan(t, allowed, req, bind, &pl);
        if (f) {
            char s[128];
            hwloc_bitmap_list_snprintf(s, sizeof s, allowed);
            fprintf(stderr, "\n  plan failed %d checks: allowed %s, nthreads %d, bind %d\n", f, s,
                    req, bind);
        }
        mpm__topo_free(&pl);
        CU_ASSERT_PTR_NULL(pl.cpusets);
        CU_ASSERT_PTR_NULL(pl.allowed);
    }
    hwloc_bitmap_free(allowed);
}

static const int ALL16[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, -1};

static void test_synthetic_shape(void)
{
    hwloc_topology_t t = load_synth("pack:2 core:4 pu:2");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE), 8);
    CU_ASSERT_EQUAL(hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU), 16);
    /* PUs 2k and 2k+1 share core k: the cases below rely on it. */
    for (unsigned k = 0; k < 8; k++) {
        hwloc_obj_t a = pu(t, 2 * k), b = pu(t, 2 * k + 1);
        CU_ASSERT_PTR_NOT_NULL(a);
        CU_ASSERT_PTR_NOT_NULL(b);
        if (a && b) {
            hwloc_obj_t ca = hwloc_get_ancestor_obj_by_type(t, HWLOC_OBJ_CORE, a);
            hwloc_obj_t cb = hwloc_get_ancestor_obj_by_type(t, HWLOC_OBJ_CORE, b);
            CU_ASSERT_PTR_EQUAL(ca, cb);
            CU_ASSERT_EQUAL(ca ? ca->logical_index : 99, k);
        }
    }
    hwloc_topology_destroy(t);
}

static void test_whole_machine(void)
{
    hwloc_topology_t t = load_synth("pack:2 core:4 pu:2");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    for (int req = 0; req <= 20; req++)
        run_case(t, ALL16, req, 1);
    run_case(t, ALL16, 0, 0);
    run_case(t, ALL16, 3, 0);
    run_case(t, ALL16, 12, 0);
    /* The whole machine, auto threads: 8 threads, one per core, not oversubscribed. */
    hwloc_bitmap_t all = set_of(ALL16);
    mpm_placement_t pl;
    CU_ASSERT_EQUAL_FATAL(mpm__topo_plan(t, all, 0, 1, &pl), 0);
    CU_ASSERT_EQUAL(pl.nthreads, 8);
    CU_ASSERT_EQUAL(pl.ncores, 8);
    CU_ASSERT_EQUAL(pl.oversubscribed, 0);
    for (int i = 0; i < 8; i++)
        CU_ASSERT_EQUAL(hwloc_bitmap_weight(pl.cpusets[i]), 2);
    mpm__topo_free(&pl);
    /* 9 threads on 8 cores: oversubscribed, thread 8 back on core 0. */
    CU_ASSERT_EQUAL_FATAL(mpm__topo_plan(t, all, 9, 1, &pl), 0);
    CU_ASSERT_EQUAL(pl.oversubscribed, 1);
    CU_ASSERT_EQUAL(pl.core_index[8], pl.core_index[0]);
    CU_ASSERT(hwloc_bitmap_isequal(pl.cpusets[8], pl.cpusets[0]));
    mpm__topo_free(&pl);
    hwloc_bitmap_free(all);
    hwloc_topology_destroy(t);
}

static void test_one_core(void)
{
    hwloc_topology_t t = load_synth("pack:2 core:4 pu:2");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    static const int core5[] = {10, 11, -1};
    for (int req = 0; req <= 4; req++)
        run_case(t, core5, req, 1);
    run_case(t, core5, 0, 0);
    run_case(t, core5, 3, 0);
    hwloc_bitmap_t a = set_of(core5);
    mpm_placement_t pl;
    CU_ASSERT_EQUAL_FATAL(mpm__topo_plan(t, a, 0, 1, &pl), 0);
    CU_ASSERT_EQUAL(pl.nthreads, 1);
    CU_ASSERT_EQUAL(pl.ncores, 1);
    CU_ASSERT_EQUAL(pl.core_index[0], 5);
    CU_ASSERT(hwloc_bitmap_isequal(pl.cpusets[0], a));
    mpm__topo_free(&pl);
    CU_ASSERT_EQUAL_FATAL(mpm__topo_plan(t, a, 3, 1, &pl), 0);
    CU_ASSERT_EQUAL(pl.oversubscribed, 1);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(pl.core_index[i], 5);
        CU_ASSERT(hwloc_bitmap_isequal(pl.cpusets[i], a));
    }
    mpm__topo_free(&pl);
    hwloc_bitmap_free(a);
    hwloc_topology_destroy(t);
}

static void test_two_pus_different_cores(void)
{
    hwloc_topology_t t = load_synth("pack:2 core:4 pu:2");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    static const int two[] = {0, 3, -1};  /* core 0 and core 1, one PU each */
    static const int far[] = {1, 14, -1}; /* core 0 (package 0) and core 7 (package 1) */
    for (int req = 0; req <= 5; req++) {
        run_case(t, two, req, 1);
        run_case(t, far, req, 1);
    }
    run_case(t, two, 0, 0);
    hwloc_bitmap_t a = set_of(two);
    mpm_placement_t pl;
    CU_ASSERT_EQUAL_FATAL(mpm__topo_plan(t, a, 0, 1, &pl), 0);
    CU_ASSERT_EQUAL(pl.nthreads, 2);
    CU_ASSERT_EQUAL(pl.oversubscribed, 0);
    CU_ASSERT_EQUAL(hwloc_bitmap_weight(pl.cpusets[0]), 1);
    CU_ASSERT_EQUAL(hwloc_bitmap_weight(pl.cpusets[1]), 1);
    CU_ASSERT(hwloc_bitmap_isset(pl.cpusets[0], 0));
    CU_ASSERT(hwloc_bitmap_isset(pl.cpusets[1], 3));
    mpm__topo_free(&pl);
    hwloc_bitmap_free(a);
    hwloc_topology_destroy(t);
}

static void test_partial_core(void)
{
    hwloc_topology_t t = load_synth("pack:2 core:4 pu:2");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    static const int part[] = {1, 4, 5, -1}; /* half of core 0, all of core 2 */
    static const int odd[] = {1, 3, 5, 7, 9, 11, 13, 15, -1};
    static const int one[] = {6, -1};
    for (int req = 0; req <= 7; req++) {
        run_case(t, part, req, 1);
        run_case(t, odd, req, 1);
        run_case(t, one, req, 1);
    }
    run_case(t, part, 0, 0);
    run_case(t, odd, 4, 0);
    hwloc_bitmap_t a = set_of(part);
    mpm_placement_t pl;
    CU_ASSERT_EQUAL_FATAL(mpm__topo_plan(t, a, 0, 1, &pl), 0);
    CU_ASSERT_EQUAL(pl.ncores, 2);
    CU_ASSERT_EQUAL(pl.core_index[0], 0);
    CU_ASSERT_EQUAL(pl.core_index[1], 2);
    /* The thread on core 0 must not get PU 0, which was not given. */
    CU_ASSERT_EQUAL(hwloc_bitmap_weight(pl.cpusets[0]), 1);
    CU_ASSERT(hwloc_bitmap_isset(pl.cpusets[0], 1));
    CU_ASSERT(!hwloc_bitmap_isset(pl.cpusets[0], 0));
    CU_ASSERT_EQUAL(hwloc_bitmap_weight(pl.cpusets[1]), 2);
    mpm__topo_free(&pl);
    hwloc_bitmap_free(a);
    hwloc_topology_destroy(t);
}

static void test_empty_or_foreign_cpuset(void)
{
    hwloc_topology_t t = load_synth("pack:2 core:4 pu:2");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    hwloc_bitmap_t a = hwloc_bitmap_alloc();
    mpm_placement_t pl;
    CU_ASSERT_EQUAL(mpm__topo_plan(t, a, 0, 1, &pl), -1);
    CU_ASSERT_EQUAL(mpm__topo_plan(t, a, 4, 0, &pl), -1);
    /* PUs that are not in the topology at all. */
    hwloc_bitmap_set(a, 100);
    hwloc_bitmap_set(a, 200);
    CU_ASSERT_EQUAL(mpm__topo_plan(t, a, 0, 1, &pl), -1);
    /* Mixed: only the PU that exists counts, and threads stay off the others. */
    hwloc_bitmap_set(a, 2);
    int rc = mpm__topo_plan(t, a, 2, 1, &pl);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc == 0) {
        CU_ASSERT_EQUAL(pl.ncores, 1);
        CU_ASSERT_EQUAL(pl.nthreads, 2);
        CU_ASSERT_EQUAL(pl.oversubscribed, 1);
        for (int i = 0; i < pl.nthreads; i++) {
            CU_ASSERT_EQUAL(hwloc_bitmap_weight(pl.cpusets[i]), 1);
            CU_ASSERT(hwloc_bitmap_isset(pl.cpusets[i], 2));
        }
        mpm__topo_free(&pl);
    }
    hwloc_bitmap_free(a);
    hwloc_topology_destroy(t);
}

/* A topology without Core objects: PUs stand in for cores. */
static void test_no_cores(void)
{
    hwloc_topology_t t = load_synth("pack:1 pu:4");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    static const int all4[] = {0, 1, 2, 3, -1};
    static const int some[] = {1, 3, -1};
    for (int req = 0; req <= 6; req++) {
        run_case(t, all4, req, 1);
        run_case(t, some, req, 1);
    }
    run_case(t, all4, 0, 0);
    hwloc_bitmap_t a = set_of(some);
    mpm_placement_t pl;
    CU_ASSERT_EQUAL_FATAL(mpm__topo_plan(t, a, 0, 1, &pl), 0);
    CU_ASSERT_EQUAL(pl.ncores, 2);
    CU_ASSERT_EQUAL(pl.nthreads, 2);
    for (int i = 0; i < 2; i++)
        CU_ASSERT_EQUAL(hwloc_bitmap_weight(pl.cpusets[i]), 1);
    mpm__topo_free(&pl);
    hwloc_bitmap_free(a);
    hwloc_topology_destroy(t);

    /* Other shapes, with and without cores: every property holds. */
    static const char *const shapes[] = {"pu:3", "pack:2 pu:3", "core:3 pu:4", "pack:3 core:1 pu:1",
                                         NULL};
    for (int s = 0; shapes[s]; s++) {
        t = load_synth(shapes[s]);
        CU_ASSERT_PTR_NOT_NULL(t);
        if (!t) continue;
        int npu = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU);
        int list[64], k = 0;
        for (int i = 0; i < npu && k < 63; i++)
            list[k++] = i;
        list[k] = -1;
        for (int req = 0; req <= npu + 2; req++)
            run_case(t, list, req, 1);
        /* Every other PU. */
        k = 0;
        for (int i = 0; i < npu && k < 63; i += 2)
            list[k++] = i;
        list[k] = -1;
        for (int req = 0; req <= 3; req++)
            run_case(t, list, req, 1);
        hwloc_topology_destroy(t);
    }
}

static int count_substr(const char *s, const char *sub)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, sub)); p += strlen(sub))
        n++;
    return n;
}

static void test_describe(void)
{
    hwloc_topology_t t = load_synth("pack:2 core:4 pu:2");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    static const int part[] = {1, 4, 5, 8, -1};
    hwloc_bitmap_t a = set_of(part);
    mpm_placement_t pl;
    for (int bind = 0; bind <= 1; bind++) {
        for (int req = 0; req <= 7; req++) {
            CU_ASSERT_EQUAL_FATAL(mpm__topo_plan(t, a, req, bind, &pl), 0);
            char buf[4096];
            mpm__topo_describe(t, &pl, "nodeX", 3, buf, sizeof buf);
            CU_ASSERT(strstr(buf, "nodeX") != NULL);
            CU_ASSERT(strstr(buf, "rank 3") != NULL);
            CU_ASSERT(strstr(buf, "1,4-5,8") != NULL); /* the cpuset given */
            for (int i = 0; i < pl.nthreads; i++) {
                char want[64];
                snprintf(want, sizeof want, "thread %d ", i);
                CU_ASSERT_EQUAL(count_substr(buf, want), 1);
                if (bind) {
                    snprintf(want, sizeof want, "thread %d -> core L#%d", i, pl.core_index[i]);
                    CU_ASSERT(strstr(buf, want) != NULL);
                }
            }
            char extra[64];
            snprintf(extra, sizeof extra, "thread %d ", pl.nthreads);
            CU_ASSERT(strstr(buf, extra) == NULL);
            if (!bind) CU_ASSERT(strstr(buf, "not pinned") != NULL);

            /* A short buffer: truncated, terminated, nothing written past it. */
            char small[64 + 16];
            memset(small, 'Z', sizeof small);
            mpm__topo_describe(t, &pl, "nodeX", 3, small, 64);
            CU_ASSERT(memchr(small, 0, 64) != NULL);
            int intact = 1;
            for (size_t k = 64; k < sizeof small; k++)
                intact &= small[k] == 'Z';
            CU_ASSERT(intact);
            mpm__topo_free(&pl);
        }
    }
    hwloc_bitmap_free(a);
    hwloc_topology_destroy(t);
}

/* The real machine: load gives a non-empty cpuset inside the topology and a
 * plan over it works (and binding the calling thread succeeds or is refused
 * cleanly). */
static void test_load_real(void)
{
    hwloc_topology_t t;
    hwloc_bitmap_t allowed = hwloc_bitmap_alloc();
    char err[256] = "";
    int rc = mpm__topo_load(&t, allowed, err, sizeof err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "topo_load: %s\n", err);
        hwloc_bitmap_free(allowed);
        return;
    }
    CU_ASSERT(!hwloc_bitmap_iszero(allowed));
    CU_ASSERT(hwloc_bitmap_isincluded(allowed, hwloc_topology_get_topology_cpuset(t)));
    mpm_placement_t pl;
    CU_ASSERT_EQUAL(mpm__topo_plan(t, allowed, 0, 1, &pl), 0);
    if (pl.cpusets) {
        check_plan(t, allowed, 0, 1, &pl);
        mpm__topo_free(&pl);
    }
    CU_ASSERT_EQUAL(mpm__topo_plan(t, allowed, 0, 0, &pl), 0);
    if (pl.cpusets) {
        /* bind = 0: binding is a no-op that succeeds. */
        CU_ASSERT_EQUAL(mpm__topo_bind_thread(t, &pl, 0), 0);
        mpm__topo_free(&pl);
    }
    hwloc_bitmap_free(allowed);
    hwloc_topology_destroy(t);
}

int main(void)
{
    static const tu_test_t tests[] = {
        {"synthetic topology shape", test_synthetic_shape},
        {"allowed = whole machine", test_whole_machine},
        {"allowed = one core", test_one_core},
        {"allowed = two PUs on different cores", test_two_pus_different_cores},
        {"allowed = partial cores", test_partial_core},
        {"empty or foreign cpuset", test_empty_or_foreign_cpuset},
        {"topologies without cores", test_no_cores},
        {"describe mentions every thread", test_describe},
        {"load on this machine", test_load_real},
        {NULL, NULL}};
    return tu_main("topo", NULL, NULL, tests);
}
