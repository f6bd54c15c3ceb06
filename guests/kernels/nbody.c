/* nbody: direct-summation gravitational N-body simulation, double precision.
 *
 * usage: nbody [scale]         stdout: "nbody <16 hex>\n"
 *
 * NB bodies with random masses, positions in a unit cube and small random
 * velocities.  Each step computes all pairwise softened accelerations
 *     a_i += m_j (r_j - r_i) / (|r_j - r_i|^2 + EPS2)^(3/2)
 * (each pair once, applied to both bodies; one sqrt and one division per
 * pair), then advances with a kick-drift (symplectic Euler) update.  Steps =
 * STEPS * scale; memory does not grow.  At the end the total energy is
 * computed (another pass of sqrt and division).  The hash covers positions,
 * velocities and the energy.
 */
#include <math.h>

#include "common.h"

#define NB 1000      /* bodies */
#define STEPS 500    /* time steps at scale 1 */
#define DT 0.001
#define EPS2 0.0001  /* softening length squared */

typedef struct {
    double x, y, z;
} vec3;

static void accelerations(const vec3 *pos, const double *mass, vec3 *acc)
{
    for (int i = 0; i < NB; i++)
        acc[i] = (vec3){0.0, 0.0, 0.0};
    for (int i = 0; i < NB; i++) {
        const vec3 pi = pos[i];
        vec3 ai = acc[i];
        for (int j = i + 1; j < NB; j++) {
            const double dx = pos[j].x - pi.x;
            const double dy = pos[j].y - pi.y;
            const double dz = pos[j].z - pi.z;
            const double r2 = dx * dx + dy * dy + dz * dz + EPS2;
            const double inv = 1.0 / (r2 * sqrt(r2)); /* 1 / r^3 */
            const double si = mass[j] * inv, sj = mass[i] * inv;
            ai.x += dx * si;
            ai.y += dy * si;
            ai.z += dz * si;
            acc[j].x -= dx * sj;
            acc[j].y -= dy * sj;
            acc[j].z -= dz * sj;
        }
        acc[i] = ai;
    }
}

static double energy(const vec3 *pos, const vec3 *vel, const double *mass)
{
    double e = 0.0;
    for (int i = 0; i < NB; i++) {
        e += 0.5 * mass[i] * (vel[i].x * vel[i].x + vel[i].y * vel[i].y + vel[i].z * vel[i].z);
        for (int j = i + 1; j < NB; j++) {
            const double dx = pos[j].x - pos[i].x;
            const double dy = pos[j].y - pos[i].y;
            const double dz = pos[j].z - pos[i].z;
            e -= mass[i] * mass[j] / sqrt(dx * dx + dy * dy + dz * dz + EPS2);
        }
    }
    return e;
}

int main(int argc, char **argv)
{
    const uint32_t steps = STEPS * kernel_scale(argc, argv, "nbody");
    vec3 *pos = xcalloc(NB, sizeof *pos);
    vec3 *vel = xcalloc(NB, sizeof *vel);
    vec3 *acc = xcalloc(NB, sizeof *acc);
    double *mass = xcalloc(NB, sizeof *mass);

    uint64_t seed = UINT64_C(0x6e626f6479);
    for (int i = 0; i < NB; i++) {
        /* One draw per statement: the evaluation order of the expressions
         * in an initialiser list is unspecified in C. */
        mass[i] = (0.5 + rand_unit(&seed)) / NB;
        pos[i].x = rand_signed(&seed);
        pos[i].y = rand_signed(&seed);
        pos[i].z = rand_signed(&seed);
        vel[i].x = 0.1 * rand_signed(&seed);
        vel[i].y = 0.1 * rand_signed(&seed);
        vel[i].z = 0.1 * rand_signed(&seed);
    }

    for (uint32_t s = 0; s < steps; s++) {
        accelerations(pos, mass, acc);
        for (int i = 0; i < NB; i++) {
            vel[i].x += DT * acc[i].x;
            vel[i].y += DT * acc[i].y;
            vel[i].z += DT * acc[i].z;
            pos[i].x += DT * vel[i].x;
            pos[i].y += DT * vel[i].y;
            pos[i].z += DT * vel[i].z;
        }
    }

    uint64_t h = HASH_INIT;
    for (int i = 0; i < NB; i++) {
        h = hash_f64(h, pos[i].x);
        h = hash_f64(h, pos[i].y);
        h = hash_f64(h, pos[i].z);
        h = hash_f64(h, vel[i].x);
        h = hash_f64(h, vel[i].y);
        h = hash_f64(h, vel[i].z);
    }
    h = hash_f64(h, energy(pos, vel, mass));
    free(pos);
    free(vel);
    free(acc);
    free(mass);
    return kernel_finish("nbody", h);
}
