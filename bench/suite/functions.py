"""The TPE robustness suite's functions (issue 16 part 5): one definition, used by both sides.

Each function is (space, f, minimum, half): `space` in tune's space.json syntax (the same
object is given to tune's searcher and translated to Optuna's suggest_* calls by
optuna_suggest), `f(config) -> float` on a config dict as either side suggests it, the known
global minimum (the regret is best value - minimum), and the half it belongs to: "train"
(defaults are chosen on these) or "report" (reported on, never used to choose).

Standard test functions from the Virtual Library of Simulation Experiments
(https://www.sfu.ca/~ssurjano/optimization.html) on their usual domains, 2 to 20 dimensions;
variants with integer, quantised, log-scaled and categorical parameters; and tabular HPO
surrogates of real tune-trainer runs on Fashion-MNIST (bench/suite/surrogates/*.csv, made by
bench/suite/make_surrogates.py; a config is looked up at its nearest grid point).
"""
import csv
import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))
PI = math.pi


def xs(c, d, prefix="x"):
    return [float(c[f"{prefix}{i}"]) for i in range(d)]


def box(d, low, high, kind="uniform", extra=None):
    return {f"x{i}": {kind: [low, high] + (extra or [])} for i in range(d)}


# ---------------------------------------------------------------- the functions themselves
def ackley(x):
    d = len(x)
    sq = sum(v * v for v in x) / d
    cs = sum(math.cos(2 * PI * v) for v in x) / d
    return -20 * math.exp(-0.2 * math.sqrt(sq)) - math.exp(cs) + 20 + math.e


def rastrigin(x):
    return 10 * len(x) + sum(v * v - 10 * math.cos(2 * PI * v) for v in x)


def griewank(x):
    s = sum(v * v for v in x) / 4000
    p = 1.0
    for i, v in enumerate(x):
        p *= math.cos(v / math.sqrt(i + 1))
    return s - p + 1


def levy(x):
    w = [1 + (v - 1) / 4 for v in x]
    total = math.sin(PI * w[0]) ** 2 + (w[-1] - 1) ** 2 * (1 + math.sin(2 * PI * w[-1]) ** 2)
    for wi in w[:-1]:
        total += (wi - 1) ** 2 * (1 + 10 * math.sin(PI * wi + 1) ** 2)
    return total


def schwefel(x):
    return 418.9828872724338 * len(x) - sum(v * math.sin(math.sqrt(abs(v))) for v in x)


def styblinski_tang(x):
    return sum(v ** 4 - 16 * v * v + 5 * v for v in x) / 2


ST_MIN = -39.16616570377142  # per dimension, at x = -2.903534


def rosenbrock(x):
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(len(x) - 1))


def zakharov(x):
    s2 = sum(0.5 * (i + 1) * v for i, v in enumerate(x))
    return sum(v * v for v in x) + s2 ** 2 + s2 ** 4


def dixon_price(x):
    return (x[0] - 1) ** 2 + sum((i + 1) * (2 * x[i] ** 2 - x[i - 1]) ** 2 for i in range(1, len(x)))


def michalewicz(x, m=10):
    return -sum(math.sin(v) * math.sin((i + 1) * v * v / PI) ** (2 * m) for i, v in enumerate(x))


def goldstein_price(x):
    a, b = x
    p = 1 + (a + b + 1) ** 2 * (19 - 14 * a + 3 * a * a - 14 * b + 6 * a * b + 3 * b * b)
    q = 30 + (2 * a - 3 * b) ** 2 * (18 - 32 * a + 12 * a * a + 48 * b - 36 * a * b + 27 * b * b)
    return p * q


def six_hump_camel(x):
    a, b = x
    return (4 - 2.1 * a * a + a ** 4 / 3) * a * a + a * b + (-4 + 4 * b * b) * b * b


H3_A = [[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]]
H3_P = [[0.3689, 0.1170, 0.2673], [0.4699, 0.4387, 0.7470], [0.1091, 0.8732, 0.5547],
        [0.03815, 0.5743, 0.8828]]
H_ALPHA = [1.0, 1.2, 3.0, 3.2]


def hartmann3(x):
    return -sum(H_ALPHA[i] * math.exp(-sum(H3_A[i][j] * (x[j] - H3_P[i][j]) ** 2 for j in range(3)))
                for i in range(4))


SHEKEL_C = [0.1, 0.2, 0.2, 0.4, 0.4, 0.6, 0.3, 0.7, 0.5, 0.5]
SHEKEL_A = [[4, 4, 4, 4], [1, 1, 1, 1], [8, 8, 8, 8], [6, 6, 6, 6], [3, 7, 3, 7], [2, 9, 2, 9],
            [5, 5, 3, 3], [8, 1, 8, 1], [6, 2, 6, 2], [7, 3.6, 7, 3.6]]


def shekel10(x):
    return -sum(1 / (SHEKEL_C[i] + sum((x[j] - SHEKEL_A[i][j]) ** 2 for j in range(4)))
                for i in range(10))


def powell(x):
    total = 0.0
    for i in range(len(x) // 4):
        a, b, c, d = x[4 * i:4 * i + 4]
        total += (a + 10 * b) ** 2 + 5 * (c - d) ** 2 + (b - 2 * c) ** 4 + 10 * (a - d) ** 4
    return total


def sum_powers(x):
    return sum(abs(v) ** (i + 2) for i, v in enumerate(x))


def bukin6(x):
    a, b = x
    return 100 * math.sqrt(abs(b - 0.01 * a * a)) + 0.01 * abs(a + 10)


def eggholder(x):
    a, b = x
    return (-(b + 47) * math.sin(math.sqrt(abs(b + a / 2 + 47)))
            - a * math.sin(math.sqrt(abs(a - (b + 47)))))


# The categorical offsets of the mixed variants: each option shifts the optimum and adds a
# constant, so the best option must be found and the continuous part re-located for it.
CAT_OFFSET = {"a": 0.0, "b": 0.4, "c": 1.0, "d": 2.5}
CAT_SHIFT = {"a": 0.0, "b": 1.0, "c": -1.0, "d": 0.5}


def styblinski_cat(c):
    o = c["opt"]
    return styblinski_tang([v - CAT_SHIFT[o] for v in xs(c, 4)]) + CAT_OFFSET[o]


def zakharov_mixed(c):
    # 4 floats, 2 integers (a step of 1 on [-5, 10]: the optimum 0 is on the grid), a choice.
    o = c["opt"]
    x = [v - CAT_SHIFT[o] for v in xs(c, 4)] + [float(c["n0"]), float(c["n1"])]
    return zakharov(x) + 5 * CAT_OFFSET[o]


def levy_log(c):
    # 4 log-scaled parameters in [1e-4, 1e2] (learning-rate-like): x = log10(p), optimum 1e1.
    return levy([math.log10(float(c[f"p{i}"])) for i in range(4)])


# ---------------------------------------------------------------- surrogates
class Table:
    """A tabular surrogate: the CSV's grid of (hyperparameters -> value); a config is looked up at
    its nearest grid point (numeric parameters scaled to [0, 1], log-scaled for loguniform ones;
    categorical ones must match)."""

    def __init__(self, path, space, value="val_error"):
        self.space = space
        with open(path) as f:
            self.rows = [r for r in csv.DictReader(f)]
        self.values = [float(r[value]) for r in self.rows]
        self.minimum = min(self.values)

    def coord(self, name, v):
        (kind, args), = self.space[name].items()
        if kind == "choice":
            return None
        lo, hi = float(args[0]), float(args[1])
        v = float(v)
        if kind.endswith("loguniform"):
            return (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo))
        return (v - lo) / (hi - lo)

    def __call__(self, c):
        best, best_d = None, math.inf
        for row, value in zip(self.rows, self.values):
            d = 0.0
            for name, spec in self.space.items():
                if "choice" in spec:
                    if str(row[name]) != str(c[name]):
                        d = math.inf
                        break
                else:
                    d += (self.coord(name, row[name]) - self.coord(name, c[name])) ** 2
            if d < best_d:
                best, best_d = value, d
        return best


SURROGATE_SPACES = {
    # MLP, AdamW: learning rate, dropout, width (bench/suite/make_surrogates.py's grids).
    "fashion_mlp": {"lr": {"loguniform": [1e-4, 1e-1]}, "dropout": {"uniform": [0.0, 0.6]},
                    "hidden": {"choice": [32, 512]}},
    # MLP (128 wide), SGD with momentum 0.9: learning rate, weight decay, batch size.
    "fashion_sgd": {"lr": {"loguniform": [1e-3, 1.0]}, "weight_decay": {"loguniform": [1e-6, 1e-1]},
                    "batch_size": {"choice": [32, 512]}},
}


def surrogate(name):
    path = os.path.join(HERE, "surrogates", f"{name}.csv")
    if not os.path.exists(path):
        return None
    table = Table(path, SURROGATE_SPACES[name])
    return table


# ---------------------------------------------------------------- the suite
def _vector(fn, d, prefix="x"):
    return lambda c: fn(xs(c, d, prefix))


def functions():
    """name -> (space, f, minimum, half), in the table's order (train half first)."""
    out = {}

    def add(name, space, f, minimum, half):
        out[name] = (space, f, minimum, half)

    # train half
    add("ackley20", box(20, -32.768, 32.768), _vector(ackley, 20), 0.0, "train")
    add("griewank8", box(8, -600, 600), _vector(griewank, 8), 0.0, "train")
    add("schwefel4", box(4, -500, 500), _vector(schwefel, 4), 0.0, "train")
    add("rosenbrock10", box(10, -5, 10), _vector(rosenbrock, 10), 0.0, "train")
    add("michalewicz5", box(5, 0, PI), _vector(michalewicz, 5), -4.687658179, "train")
    add("goldstein_price", box(2, -2, 2), _vector(goldstein_price, 2), 3.0, "train")
    add("hartmann3", box(3, 0, 1), _vector(hartmann3, 3), -3.86278214782076, "train")
    add("powell8", box(8, -4, 5), _vector(powell, 8), 0.0, "train")
    add("bukin6", {"x0": {"uniform": [-15, -5]}, "x1": {"uniform": [-3, 3]}},
        _vector(bukin6, 2), 0.0, "train")
    add("rastrigin_int6", box(6, -5, 6, "randint"), _vector(rastrigin, 6), 0.0, "train")
    add("styblinski_cat4", dict(box(4, -5, 5), opt={"choice": list(CAT_OFFSET)}),
        styblinski_cat, 4 * ST_MIN, "train")
    add("levy_log4", {f"p{i}": {"loguniform": [1e-4, 1e2]} for i in range(4)}, levy_log, 0.0,
        "train")
    # report half
    add("rastrigin5", box(5, -5.12, 5.12), _vector(rastrigin, 5), 0.0, "report")
    add("levy6", box(6, -10, 10), _vector(levy, 6), 0.0, "report")
    add("levy20", box(20, -10, 10), _vector(levy, 20), 0.0, "report")
    add("styblinski_tang5", box(5, -5, 5), _vector(styblinski_tang, 5), 5 * ST_MIN, "report")
    add("zakharov8", box(8, -5, 10), _vector(zakharov, 8), 0.0, "report")
    add("dixon_price6", box(6, -10, 10), _vector(dixon_price, 6), 0.0, "report")
    add("six_hump_camel", {"x0": {"uniform": [-3, 3]}, "x1": {"uniform": [-2, 2]}},
        _vector(six_hump_camel, 2), -1.031628453489877, "report")
    add("shekel10", box(4, 0, 10), _vector(shekel10, 4), -10.536409816692043, "report")
    add("sum_powers10", box(10, -1, 1), _vector(sum_powers, 10), 0.0, "report")
    add("eggholder", box(2, -512, 512), _vector(eggholder, 2), -959.6406627208506, "report")
    add("levy_q5", box(5, -10, 10, "quniform", [0.5]), _vector(levy, 5), 0.0, "report")
    add("zakharov_mixed", dict(box(4, -5, 10), n0={"randint": [-5, 11]}, n1={"randint": [-5, 11]},
                               opt={"choice": list(CAT_OFFSET)}), zakharov_mixed, 0.0, "report")
    for name, half in (("fashion_mlp", "train"), ("fashion_sgd", "report")):
        table = surrogate(name)
        if table is not None:
            add(name, SURROGATE_SPACES[name], table, table.minimum, half)
    order = [n for n in out if out[n][3] == "train"] + [n for n in out if out[n][3] == "report"]
    return {n: out[n] for n in order}


def optuna_suggest(trial, space):
    """The config Optuna's trial suggests for a tune space.json object (the kinds used here)."""
    config = {}
    for name, spec in space.items():
        (kind, args), = spec.items()
        if kind == "uniform":
            config[name] = trial.suggest_float(name, args[0], args[1])
        elif kind == "quniform":
            config[name] = trial.suggest_float(name, args[0], args[1], step=args[2])
        elif kind == "loguniform":
            config[name] = trial.suggest_float(name, args[0], args[1], log=True)
        elif kind == "randint":  # [low, high): Optuna's bounds are inclusive
            config[name] = trial.suggest_int(name, args[0], args[1] - 1)
        elif kind == "choice":
            config[name] = trial.suggest_categorical(name, args)
        else:
            raise ValueError(f"{name}: {kind} not translated")
    return config
