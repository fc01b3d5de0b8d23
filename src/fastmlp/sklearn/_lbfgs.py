"""What both L-BFGS fits share: in memory (``_base``) and on a Dask cluster (``_distributed``).

Its own module so that ``_base`` reaches the Dask fit (``_distributed``) without that module
importing ``_base`` back.
"""

import warnings

from sklearn.exceptions import ConvergenceWarning


def check_lbfgs_result(result, max_iter):
    """Return the iterations of an L-BFGS run; warn as scikit-learn when it failed."""
    n_iter = min(result.nit, max_iter)
    if result.status != 0:
        msg = (f"lbfgs failed to converge after {n_iter} iteration(s) "
               f"(status={result.status}):\n{result.message}\n")
        if n_iter == max_iter:
            msg += ("\nIncrease the number of iterations to improve the convergence "
                    f"(max_iter={max_iter}).")
        msg += ("\nYou might also want to scale the data as shown in:\n"
                "    https://scikit-learn.org/stable/modules/preprocessing.html")
        warnings.warn(msg, ConvergenceWarning, stacklevel=3)
    return n_iter
