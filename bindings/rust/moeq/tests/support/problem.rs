//! A random expert-GEMM problem on the CPU: activations grouped by expert, an NF4
//! weight (quantized by moeq, and its dequantized values), LoRA factors.
use super::random::Random;
use moeq::{
    dequantize, quantize, ExpertGemm, ExpertGemmGrad, Lora, QTensor, QuantConfig, Stream, TensorView, TensorViewMut,
    WeightLayout,
};

pub struct Problem {
    pub experts: usize,
    /// M: the routed rows plus `unrouted_rows` past the last group end.
    pub rows: usize,
    pub in_features: usize,
    pub out_features: usize,
    pub rank: usize,
    pub scale: f32,
    pub layout: WeightLayout,
    pub group_end: Vec<i64>,
    /// [M, K]
    pub x: Vec<f32>,
    pub weight: QTensor,
    /// The weight's logical tensor, [E, N, K] or [E, K, N], as moeq dequantizes it.
    pub dequantized: Vec<f32>,
    /// [E, r, K]
    pub lora_a: Vec<f32>,
    /// [E, N, r]
    pub lora_b: Vec<f32>,
}

impl Problem {
    /// `rows_per_expert` may hold zeros; `unrouted_rows` trail the last expert's rows.
    pub fn new(
        seed: u64,
        rows_per_expert: &[i64],
        unrouted_rows: usize,
        in_features: usize,
        out_features: usize,
        rank: usize,
        layout: WeightLayout,
    ) -> Problem {
        let mut random = Random::new(seed);
        let experts = rows_per_expert.len();
        let group_end: Vec<i64> = rows_per_expert
            .iter()
            .scan(0, |end, rows| {
                *end += rows;
                Some(*end)
            })
            .collect();
        let rows = *group_end.last().unwrap_or(&0) as usize + unrouted_rows;
        let weight_shape = match layout {
            WeightLayout::ExpertOutIn => [experts as i64, out_features as i64, in_features as i64],
            WeightLayout::ExpertInOut => [experts as i64, in_features as i64, out_features as i64],
        };
        let weight_values = random.values(experts * out_features * in_features, 0.5);
        let weight = quantize(
            &TensorView::from_slice(&weight_values, &weight_shape).unwrap(),
            &QuantConfig::default(),
            Stream::DEFAULT,
        )
        .expect("quantize the weight");
        let mut dequantized = vec![0f32; weight_values.len()];
        dequantize(
            &weight.view(),
            TensorViewMut::from_slice(&mut dequantized, &weight_shape).unwrap(),
            Stream::DEFAULT,
        )
        .expect("dequantize the weight");
        Problem {
            experts,
            rows,
            in_features,
            out_features,
            rank,
            scale: 0.75,
            layout,
            group_end,
            x: random.values(rows * in_features, 1.0),
            weight,
            dequantized,
            lora_a: random.values(experts * rank * in_features, 0.25),
            lora_b: random.values(experts * out_features * rank, 0.25),
        }
    }

    /// W_e[n][k], whichever layout the weight has.
    pub fn weight_at(&self, expert: usize, out: usize, inp: usize) -> f64 {
        let (n, k) = (self.out_features, self.in_features);
        let index = match self.layout {
            WeightLayout::ExpertOutIn => (expert * n + out) * k + inp,
            WeightLayout::ExpertInOut => (expert * k + inp) * n + out,
        };
        f64::from(self.dequantized[index])
    }

    pub fn a_at(&self, expert: usize, rank: usize, inp: usize) -> f64 {
        f64::from(self.lora_a[(expert * self.rank + rank) * self.in_features + inp])
    }

    pub fn b_at(&self, expert: usize, out: usize, rank: usize) -> f64 {
        f64::from(self.lora_b[(expert * self.out_features + out) * self.rank + rank])
    }

    /// Where PEFT's lora_B.weight [N, r * E] keeps B_e[n][j]: the expert fastest.
    fn peft_b_index(&self, expert: usize, out: usize, rank: usize) -> usize {
        (out * self.rank + rank) * self.experts + expert
    }

    /// The strides of PEFT's lora_B.weight seen as [E, N, r].
    pub fn peft_b_strides(&self) -> [i64; 3] {
        [1, (self.rank * self.experts) as i64, self.experts as i64]
    }

    /// A contiguous [E, N, r] tensor laid out as PEFT's lora_B.weight.
    pub fn contiguous_to_peft_b(&self, contiguous: &[f32]) -> Vec<f32> {
        let mut peft = vec![0f32; contiguous.len()];
        for (index, &value) in contiguous.iter().enumerate() {
            let (expert, out, rank) = self.b_position(index);
            peft[self.peft_b_index(expert, out, rank)] = value;
        }
        peft
    }

    /// PEFT's lora_B.weight layout back to a contiguous [E, N, r] tensor.
    pub fn peft_b_to_contiguous(&self, peft: &[f32]) -> Vec<f32> {
        (0..peft.len())
            .map(|index| {
                let (expert, out, rank) = self.b_position(index);
                peft[self.peft_b_index(expert, out, rank)]
            })
            .collect()
    }

    /// (e, n, j) of flat index `index` of a contiguous [E, N, r] tensor.
    fn b_position(&self, index: usize) -> (usize, usize, usize) {
        (index / (self.out_features * self.rank), index / self.rank % self.out_features, index % self.rank)
    }

    /// The rows of expert e: [group_end[e-1], group_end[e]).
    pub fn rows_of(&self, expert: usize) -> std::ops::Range<usize> {
        let start = if expert == 0 { 0 } else { self.group_end[expert - 1] as usize };
        start..self.group_end[expert] as usize
    }

    pub fn shape_x(&self) -> [i64; 2] {
        [self.rows as i64, self.in_features as i64]
    }

    pub fn shape_y(&self) -> [i64; 2] {
        [self.rows as i64, self.out_features as i64]
    }

    pub fn shape_a(&self) -> [i64; 3] {
        [self.experts as i64, self.rank as i64, self.in_features as i64]
    }

    pub fn shape_b(&self) -> [i64; 3] {
        [self.experts as i64, self.out_features as i64, self.rank as i64]
    }

    /// The LoRA factors, both contiguous and float32.
    pub fn lora(&self) -> Lora<'_> {
        Lora {
            a: TensorView::from_slice(&self.lora_a, &self.shape_a()).unwrap(),
            b: TensorView::from_slice(&self.lora_b, &self.shape_b()).unwrap(),
            scale: self.scale,
        }
    }

    /// A valid forward call with LoRA writing `y`; tests change its fields.
    pub fn forward_args<'a>(&'a self, y: &'a mut [f32]) -> ExpertGemm<'a> {
        ExpertGemm {
            x: TensorView::from_slice(&self.x, &self.shape_x()).unwrap(),
            weight: self.weight.view(),
            weight_layout: self.layout,
            group_end: TensorView::from_slice(&self.group_end, &[self.experts as i64]).unwrap(),
            lora: Some(self.lora()),
            y: TensorViewMut::from_slice(y, &self.shape_y()).unwrap(),
            x_lora_a: None,
            workspace: None,
        }
    }

    /// A valid backward call with LoRA from `grad_y`, writing every gradient; tests change its fields.
    pub fn backward_args<'a>(&'a self, grad_y: &'a [f32], gradients: &'a mut OutputGradients) -> ExpertGemmGrad<'a> {
        ExpertGemmGrad {
            x: Some(TensorView::from_slice(&self.x, &self.shape_x()).unwrap()),
            weight: self.weight.view(),
            weight_layout: self.layout,
            group_end: TensorView::from_slice(&self.group_end, &[self.experts as i64]).unwrap(),
            lora: Some(self.lora()),
            grad_y: TensorView::from_slice(grad_y, &self.shape_y()).unwrap(),
            x_lora_a: None,
            grad_x: Some(TensorViewMut::from_slice(&mut gradients.x, &self.shape_x()).unwrap()),
            grad_lora_a: Some(TensorViewMut::from_slice(&mut gradients.lora_a, &self.shape_a()).unwrap()),
            grad_lora_b: Some(TensorViewMut::from_slice(&mut gradients.lora_b, &self.shape_b()).unwrap()),
            workspace: None,
        }
    }

    /// Gradient buffers of the right sizes, filled with NaN so unwritten entries show.
    pub fn output_gradients(&self) -> OutputGradients {
        OutputGradients {
            x: vec![f32::NAN; self.rows * self.in_features],
            lora_a: vec![f32::NAN; self.lora_a.len()],
            lora_b: vec![f32::NAN; self.lora_b.len()],
        }
    }
}

/// Where the backward writes: grad_x [M, K], grad_lora_a [E, r, K], grad_lora_b [E, N, r].
pub struct OutputGradients {
    pub x: Vec<f32>,
    pub lora_a: Vec<f32>,
    pub lora_b: Vec<f32>,
}
