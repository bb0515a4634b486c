"""The Gaussian mixture's methods on data with missing values (``missing='marginalize'``).

``MissingEM`` and ``MissingMeanField`` (in ``vbfast.mixture.gaussian``) are the complete-data
methods with one more pass input: the ``MissingInputs`` of
``vbfast.emissions.gaussian_missing`` (the current means, precision factors and the
complete-data constants c_k, from which the data object derives the per-pattern arrays).

EM (``MissingEM``) is exact EM for the observed data (Ghahramani & Jordan 1994): the E-step
scores each row's observed block by its marginal, q(z_n, x_n,m) = p(z_n, x_n,m | x_n,o, theta)
exactly, and the M-step is the complete-data M-step on the expected statistics (the missing
coordinates at their conditional means, their conditional covariance added to the second
moments). The bound is the observed-data log-likelihood sum_n w_n log p(x_n,o | theta) per
unit weight, which never decreases.

Mean field (``MissingMeanField``) takes the factorisation q(z, X_m) q(theta) and optimises
q(z_n, x_n,m) exactly given q(theta): q(x_n,m | z_n = k) is Gaussian with mean the
conditional mean under (m_k, E[Lambda_k] = nu_k W_k) and covariance (nu_k W_k)_mm^{-1}, and
q(z_n = k) is proportional to exp(c_k + |m|/2 log 2 pi - 1/2 log |(nu_k W_k)_mm|) times the
observed block's Gaussian factor (c_k the complete-data expected constant). The q(theta)
update is the complete-data one on the expected statistics, and the ELBO reported is exact:
the complete-data expression on those statistics, whose entropy term also carries
sum_n sum_k r_nk H[q(x_n,m | z_n = k)]. Both steps are exact coordinate-ascent steps (with
``reg_covar`` the caveat of the complete-data fit), so the ELBO never decreases.
"""
import numpy as np

from ..emissions import gaussian as G
from ..emissions import gaussian_missing as GM
from ..emissions import gaussian_prior as BG


def em_inputs(method):
    """The ``MissingInputs`` of an EM pass (``EM`` state ``method``, after its own
    ``pass_inputs``): c_k = log pi_k + log det U_k - D/2 log 2 pi, empty rows at pi."""
    log_const = G.plugin_log_const(method.weights, method.prec_chol, method.covariance_type,
                                   method.means.shape[1])
    return GM.MissingInputs(method.means, method.prec_chol, method.covariance_type, log_const,
                            method._centers, method.weights)


def mean_field_inputs(method):
    """The ``MissingInputs`` of a mean-field pass (``MeanFieldFitState`` ``method``, after its
    own ``pass_inputs``): c_k the expected constant, empty rows at ``weights()``."""
    return GM.MissingInputs(method.means, method.prec_chol, method.covariance_type,
                            method.expected_log_const(), method._centers, method.weights())


def missing_inputs_at_fit(est, method, covariance_type):
    """The ``MissingInputs`` of a prediction pass at the fitted parameters of ``est``, with
    the complete rows' centres of the same pass (``GaussianPass.run``'s first argument):
    (MissingInputs, shift)."""
    weights = np.asarray(est.weights_, dtype=np.float64)
    means = np.asarray(est.means_, dtype=np.float64)
    prec_chol = np.asarray(est.precisions_cholesky_, dtype=np.float64)
    D = means.shape[1]
    if method == "mean_field":
        wc = est.weight_concentration_
        wc = (tuple(np.asarray(a, dtype=np.float64) for a in wc) if isinstance(wc, tuple)
              else np.asarray(wc, dtype=np.float64))
        log_const = BG.expected_log_const(
            wc, BG.prior_type_of(wc), np.asarray(est.mean_precision_, dtype=np.float64),
            np.asarray(est.degrees_of_freedom_, dtype=np.float64), prec_chol,
            covariance_type, D)
    else:
        log_const = G.plugin_log_const(weights, prec_chol, covariance_type, D)
    return GM.MissingInputs(means, prec_chol, covariance_type, log_const,
                            np.zeros_like(means), weights)
